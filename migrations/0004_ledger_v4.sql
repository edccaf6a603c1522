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
-- * the unsynced totals are kept as events come and go (below): the redemption needs no
--   index of its own for them;
-- * events are looked up by redemption only to find parked ones (and pending ones, once
--   per report or void, through the pending index, which covers what they read): an
--   index of the parked events alone, which a new event never enters.
DROP INDEX redemption_unsynced;
DROP INDEX outbox_redemption;
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (seq, type, redemption_id) WHERE state = 'pending';
CREATE INDEX outbox_parked ON outbox (redemption_id) WHERE state = 'parked';

-- The unsynced totals every decision under an offline limit reads, kept by the ledger
-- as events come and go instead of counted over every waiting event (a backlog of a
-- thousand events cost each decision a thousand lookups), and without a page of their
-- own on a redemption's commit: each event carries the running totals of the redeem
-- events that entered the unsynced set up to it (`in_count`, `in_value`; an entering one
-- is a pending redeem event of an unvoided redemption), and one row, `unsynced_out`,
-- counts those that left it since (answered, parked or voided; a parked one put back in
-- the queue enters again). The totals are the newest event's minus that row. Triggers
-- keep both; tests compare them with the definition in every state.
ALTER TABLE outbox ADD COLUMN in_count INTEGER;
ALTER TABLE outbox ADD COLUMN in_value INTEGER;
UPDATE outbox
SET (in_count, in_value) = (
    SELECT COUNT(*), IFNULL(SUM(r.discount), 0)
    FROM outbox o JOIN redemption r ON r.id = o.redemption_id
    WHERE o.state = 'pending' AND o.type = 'redeem' AND r.voided_ms IS NULL)
WHERE seq = (SELECT MAX(seq) FROM outbox);
CREATE TRIGGER outbox_running_totals BEFORE INSERT ON outbox
WHEN NEW.in_count IS NOT IFNULL((SELECT in_count FROM outbox WHERE seq = NEW.seq - 1), 0)
        + (NEW.type = 'redeem' AND NEW.state = 'pending'
           AND EXISTS (SELECT 1 FROM redemption WHERE id = NEW.redemption_id AND voided_ms IS NULL))
  OR NEW.in_value IS NOT IFNULL((SELECT in_value FROM outbox WHERE seq = NEW.seq - 1), 0)
        + IFNULL((SELECT discount FROM redemption
                  WHERE id = NEW.redemption_id AND voided_ms IS NULL
                    AND NEW.type = 'redeem' AND NEW.state = 'pending'), 0)
BEGIN SELECT RAISE(ABORT, 'an event carries the running unsynced totals'); END;
CREATE TRIGGER outbox_running_totals_fixed BEFORE UPDATE OF in_count, in_value ON outbox
BEGIN SELECT RAISE(ABORT, 'running totals never change'); END;
CREATE TABLE unsynced_out (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL,
    value INTEGER NOT NULL
);
INSERT INTO unsynced_out (id, count, value) VALUES (1, 0, 0);
CREATE TRIGGER unsynced_out_never_deleted BEFORE DELETE ON unsynced_out
BEGIN SELECT RAISE(ABORT, 'the unsynced totals are never deleted'); END;
-- Answered or parked, a redeem event leaves the set; put back in the queue, it enters again.
CREATE TRIGGER unsynced_event_answered AFTER UPDATE OF state ON outbox
WHEN NEW.type = 'redeem' AND (OLD.state = 'pending') <> (NEW.state = 'pending')
BEGIN
    UPDATE unsynced_out
    SET count = count + CASE WHEN NEW.state = 'pending' THEN -1 ELSE 1 END,
        value = value + CASE WHEN NEW.state = 'pending' THEN -r.discount ELSE r.discount END
    FROM (SELECT discount FROM redemption WHERE id = NEW.redemption_id AND voided_ms IS NULL) AS r;
END;
-- A voided redemption leaves it; and a void is never undone.
CREATE TRIGGER unsynced_redemption_voided AFTER UPDATE OF voided_ms ON redemption
WHEN OLD.voided_ms IS NULL AND NEW.voided_ms IS NOT NULL
 AND EXISTS (SELECT 1 FROM outbox WHERE redemption_id = NEW.id AND type = 'redeem' AND state = 'pending')
BEGIN
    UPDATE unsynced_out SET count = count + 1, value = value + NEW.discount;
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
