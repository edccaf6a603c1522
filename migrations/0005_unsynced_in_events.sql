-- redeemd ledger, version 5: the unsynced totals without a page of their own (issue 8).
--
-- Version 4 kept the totals in one row, `unsynced`, which every redemption's commit then
-- wrote: one B-tree page more per redemption. Instead, each event now carries the
-- running totals of the redeem events that entered the unsynced set up to it
-- (`in_count`, `in_value`; an entering one is a pending redeem event of an unvoided
-- redemption) on the page its insert writes anyway, and one row, `unsynced_out`, counts
-- those that left the set since (answered, parked or voided; a parked one put back in
-- the queue enters again). The totals are the newest event's minus that row. Triggers
-- keep both, and refuse an event that does not carry the right running totals; tests
-- compare the totals with the definition in every state.
DROP TRIGGER unsynced_event_added;
DROP TRIGGER unsynced_event_answered;
DROP TRIGGER unsynced_redemption_voided;
DROP TRIGGER unsynced_never_deleted;
DROP TABLE unsynced;
ALTER TABLE outbox ADD COLUMN in_count INTEGER;
ALTER TABLE outbox ADD COLUMN in_value INTEGER;
-- The newest event starts the running totals from the definition.
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
-- A voided redemption leaves it (the void is never undone: a version-4 trigger).
CREATE TRIGGER unsynced_redemption_voided AFTER UPDATE OF voided_ms ON redemption
WHEN OLD.voided_ms IS NULL AND NEW.voided_ms IS NOT NULL
 AND EXISTS (SELECT 1 FROM outbox WHERE redemption_id = NEW.id AND type = 'redeem' AND state = 'pending')
BEGIN
    UPDATE unsynced_out SET count = count + 1, value = value + NEW.discount;
END;
