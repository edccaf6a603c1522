-- redeemd ledger, version 4: rows that cost less to read and to commit (issue 8).

-- The rule set's JWS goes last in its row. Every start reads the columns before it, and
-- SQLite reaches a column stored after a 25 MB value only by walking that value's
-- overflow pages (7,000 page reads for each `check` on the command line).
CREATE TABLE ruleset_v3 (
    version       INTEGER PRIMARY KEY,
    header_json   TEXT    NOT NULL,  -- the payload without campaigns and revoked ids
    issued_at_ms  INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    installed_ms  INTEGER NOT NULL,
    revoked_count INTEGER NOT NULL,
    -- The verified JWS verbatim: its ASCII bytes, written and read in pieces (incremental
    -- BLOB I/O), never bound whole. Rows from before version 4 keep TEXT; both read alike.
    jws           BLOB    NOT NULL
);
INSERT INTO ruleset_v3 (version, header_json, issued_at_ms, expires_at_ms, installed_ms, revoked_count, jws)
    SELECT version, header_json, issued_at_ms, expires_at_ms, installed_ms, revoked_count, jws FROM ruleset;
DROP TABLE ruleset;
ALTER TABLE ruleset_v3 RENAME TO ruleset;

-- Fewer pages per redemption. Each index a row enters is one more B-tree page written
-- (and later checkpointed) by every commit; these earned nothing on that path:
-- * the unsynced totals come from the pending redeem events (a redemption is unsynced
--   while its redeem event waits for an answer; a parked one counts as answered), so
--   the pending-events index covers them and the redemption needs no index of its own;
-- * events are looked up by redemption only to find parked ones (and, once per report,
--   pending ones through the pending index): an index of the parked events alone, which
--   a new event never enters.
DROP INDEX redemption_unsynced;
DROP INDEX outbox_redemption;
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (seq, type, redemption_id) WHERE state = 'pending';
CREATE INDEX outbox_parked ON outbox (redemption_id) WHERE state = 'parked';

-- The unsynced totals every decision under an offline limit reads, kept by the ledger
-- as events come and go instead of counted over every waiting event (a backlog of a
-- thousand events cost each decision a thousand lookups). One row, changed only by the
-- triggers below; `tests` compare it with the definition in every state.
CREATE TABLE unsynced (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL,
    value INTEGER NOT NULL
);
INSERT INTO unsynced (id, count, value)
    SELECT 1, COUNT(*), IFNULL(SUM(r.discount), 0)
    FROM outbox o JOIN redemption r ON r.id = o.redemption_id
    WHERE o.state = 'pending' AND o.type = 'redeem' AND r.voided_ms IS NULL;
CREATE TRIGGER unsynced_never_deleted BEFORE DELETE ON unsynced
BEGIN SELECT RAISE(ABORT, 'the unsynced totals are never deleted'); END;
-- A pending redeem event of an unvoided redemption counts.
CREATE TRIGGER unsynced_event_added AFTER INSERT ON outbox
WHEN NEW.type = 'redeem' AND NEW.state = 'pending'
BEGIN
    UPDATE unsynced SET count = count + 1, value = value + r.discount
    FROM (SELECT discount FROM redemption WHERE id = NEW.redemption_id AND voided_ms IS NULL) AS r;
END;
-- Answered or parked, it no longer counts; put back in the queue, it counts again.
CREATE TRIGGER unsynced_event_answered AFTER UPDATE OF state ON outbox
WHEN NEW.type = 'redeem' AND (OLD.state = 'pending') <> (NEW.state = 'pending')
BEGIN
    UPDATE unsynced
    SET count = count + CASE WHEN NEW.state = 'pending' THEN 1 ELSE -1 END,
        value = value + CASE WHEN NEW.state = 'pending' THEN r.discount ELSE -r.discount END
    FROM (SELECT discount FROM redemption WHERE id = NEW.redemption_id AND voided_ms IS NULL) AS r;
END;
-- A voided redemption no longer counts; and a void is never undone.
CREATE TRIGGER unsynced_redemption_voided AFTER UPDATE OF voided_ms ON redemption
WHEN OLD.voided_ms IS NULL AND NEW.voided_ms IS NOT NULL
 AND EXISTS (SELECT 1 FROM outbox WHERE redemption_id = NEW.id AND type = 'redeem' AND state = 'pending')
BEGIN
    UPDATE unsynced SET count = count - 1, value = value - NEW.discount;
END;
CREATE TRIGGER redemption_void_final BEFORE UPDATE OF voided_ms ON redemption
WHEN OLD.voided_ms IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a void is never undone'); END;
CREATE TRIGGER redemption_amount_fixed BEFORE UPDATE OF id, discount ON redemption
BEGIN SELECT RAISE(ABORT, 'a redemption''s id and discount never change'); END;

-- Redemptions by time: their id is the UUIDv7 of their `at_ms` (both come from the same
-- instant), so the primary key already orders them by time and a report reads a range
-- of ids; the `at_ms` index, one more page per redemption, goes. The ledger refuses a
-- row that breaks this (from 1970 on; no decision accepts a code earlier).
DROP INDEX redemption_at;
CREATE TRIGGER redemption_id_is_its_time BEFORE INSERT ON redemption
WHEN NEW.at_ms >= 0 AND lower(substr(NEW.id, 1, 8) || substr(NEW.id, 10, 4)) <> printf('%012x', NEW.at_ms)
BEGIN SELECT RAISE(ABORT, 'a redemption id is the UUIDv7 of its at_ms'); END;
