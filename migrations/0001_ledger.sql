-- redeemd ledger, version 1. Never edit once released: add a new numbered file.

-- Terminal-wide facts: first_ruleset_ms, last_contact_ms.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Every rule set ever installed, the verified JWS kept verbatim. The one in force is the
-- highest version (versions only go up).
CREATE TABLE ruleset (
    version      INTEGER PRIMARY KEY,
    jws          TEXT    NOT NULL,
    header_json  TEXT    NOT NULL,  -- the payload without campaigns and revoked ids
    issued_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    installed_ms INTEGER NOT NULL,
    revoked_count INTEGER NOT NULL
);

-- Campaigns and revoked ids of the rule set in force (rebuilt from its JWS on install).
CREATE TABLE campaign (
    id        TEXT PRIMARY KEY,
    wire_json TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE revoked (
    coupon_id TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE checkout (
    id             TEXT PRIMARY KEY,
    basket_total   INTEGER NOT NULL CHECK (basket_total >= 0),
    eligible_total INTEGER NOT NULL CHECK (eligible_total >= 0),
    pos_ref        TEXT,
    opened_ms      INTEGER NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'cancelled')),
    closed_ms      INTEGER
) WITHOUT ROWID;

CREATE TABLE redemption (
    id              TEXT PRIMARY KEY,              -- UUIDv7, the decision's redemption_id
    checkout_id     TEXT    NOT NULL REFERENCES checkout (id),
    coupon_id       TEXT    NOT NULL,
    campaign_id     TEXT    NOT NULL,
    holder          BLOB    NOT NULL,
    code            TEXT    NOT NULL,
    discount        INTEGER NOT NULL CHECK (discount >= 1),
    basket_total    INTEGER NOT NULL,
    eligible_total  INTEGER NOT NULL,
    currency        TEXT    NOT NULL,
    ruleset_version INTEGER NOT NULL,
    at_ms           INTEGER NOT NULL,
    voided_ms       INTEGER,
    -- the upstream answer to the redeem event: pending | forwarded | conflict | rejected
    forward_state   TEXT    NOT NULL DEFAULT 'pending'
        CHECK (forward_state IN ('pending', 'forwarded', 'conflict', 'rejected'))
) WITHOUT ROWID;

-- At most one live (unvoided) redemption per coupon, enforced by the database itself.
CREATE UNIQUE INDEX redemption_live_coupon ON redemption (coupon_id) WHERE voided_ms IS NULL;
CREATE INDEX redemption_holder ON redemption (holder, campaign_id, at_ms) WHERE voided_ms IS NULL;
CREATE INDEX redemption_checkout ON redemption (checkout_id);
CREATE INDEX redemption_at ON redemption (at_ms);
-- Covering (the filter columns are in it), so the unsynced totals never touch the table.
CREATE INDEX redemption_unsynced ON redemption (forward_state, voided_ms, discount)
    WHERE voided_ms IS NULL AND forward_state = 'pending';

CREATE TABLE void (
    redemption_id TEXT PRIMARY KEY REFERENCES redemption (id),
    reason        TEXT,
    at_ms         INTEGER NOT NULL
) WITHOUT ROWID;

-- Append-only: what the forwarder sends upstream, in seq order.
CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY CHECK (seq >= 1),  -- per terminal, from 1, no gaps
    event_id      TEXT    NOT NULL UNIQUE,               -- UUID, the idempotency key
    type          TEXT    NOT NULL CHECK (type IN ('redeem', 'void')),
    redemption_id TEXT    NOT NULL REFERENCES redemption (id),
    body          TEXT    NOT NULL,                      -- the event JSON, as sent
    created_ms    INTEGER NOT NULL,
    state         TEXT    NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'accepted', 'duplicate', 'conflict', 'rejected', 'parked')),
    answer        TEXT,
    answered_ms   INTEGER
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE state = 'pending';
CREATE INDEX outbox_redemption ON outbox (redemption_id);

CREATE TRIGGER outbox_seq_without_gaps BEFORE INSERT ON outbox
WHEN NEW.seq IS NOT (SELECT IFNULL(MAX(seq), 0) + 1 FROM outbox)
BEGIN SELECT RAISE(ABORT, 'outbox seq must be the next one'); END;
CREATE TRIGGER outbox_never_deleted BEFORE DELETE ON outbox
BEGIN SELECT RAISE(ABORT, 'outbox rows are never deleted'); END;
CREATE TRIGGER outbox_event_fixed BEFORE UPDATE OF seq, event_id, type, redemption_id, body ON outbox
BEGIN SELECT RAISE(ABORT, 'outbox events never change'); END;
CREATE TRIGGER redemption_never_deleted BEFORE DELETE ON redemption
BEGIN SELECT RAISE(ABORT, 'redemptions are never deleted, only voided'); END;
CREATE TRIGGER void_never_deleted BEFORE DELETE ON void
BEGIN SELECT RAISE(ABORT, 'voids are never deleted'); END;
CREATE TRIGGER checkout_never_deleted BEFORE DELETE ON checkout
BEGIN SELECT RAISE(ABORT, 'checkouts are never deleted'); END;
