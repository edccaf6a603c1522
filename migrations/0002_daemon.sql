-- redeemd ledger, version 2: what the daemon (`run`) and its local API keep.

-- Every decision made for a checkout of the local API, refusals included, in order: the
-- checkout answers with them, after a restart too. `record` is the JSON as answered.
CREATE TABLE checkout_decision (
    checkout_id TEXT    NOT NULL REFERENCES checkout (id),
    n           INTEGER NOT NULL CHECK (n >= 1),
    source      TEXT    NOT NULL CHECK (source IN ('scanner', 'api')),
    at_ms       INTEGER NOT NULL,
    record      TEXT    NOT NULL,
    PRIMARY KEY (checkout_id, n)
) WITHOUT ROWID;

-- The current checkout is the most recently opened one that is still open.
CREATE INDEX checkout_open ON checkout (opened_ms) WHERE status = 'open';

-- Answers to POSTs that carried an Idempotency-Key, written in the transaction of the
-- change they report, replayed for a retry with the same key, path and body.
CREATE TABLE idempotency (
    key         TEXT    PRIMARY KEY,
    fingerprint BLOB    NOT NULL,  -- SHA-256 of method, path and body
    status      INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL
) WITHOUT ROWID;

-- Page sessions (cashier, manager): only a SHA-256 of the cookie is kept.
CREATE TABLE session (
    token_sha256 BLOB    PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('cashier', 'manager')),
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER checkout_decision_never_deleted BEFORE DELETE ON checkout_decision
BEGIN SELECT RAISE(ABORT, 'checkout decisions are never deleted'); END;
