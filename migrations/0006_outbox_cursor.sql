-- redeemd ledger, version 6: the waiting events found from a cursor, not an index (issue 8).
--
-- Every redemption's commit wrote a page of `outbox_pending` (the index of the events
-- waiting for upstream) besides the event's own page. Events are answered roughly in the
-- order they were made, so the waiting ones sit at the end of the outbox: one row,
-- `outbox_cursor`, holds `low`, and no event below `low` is pending. The waiting events
-- are then the pending ones of the range [low, newest] of the outbox's own key, which
-- costs what the backlog costs and no page a redemption writes. Triggers keep `low`: it
-- rises when the event at it leaves the queue, falls to an event put back in it, and the
-- ledger refuses a pending event below it.
DROP INDEX outbox_pending;
CREATE TABLE outbox_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    low INTEGER NOT NULL
);
INSERT INTO outbox_cursor (id, low)
    SELECT 1, IFNULL((SELECT MIN(seq) FROM outbox WHERE state = 'pending'),
                     (SELECT IFNULL(MAX(seq), 0) + 1 FROM outbox));
CREATE TRIGGER outbox_cursor_never_deleted BEFORE DELETE ON outbox_cursor
BEGIN SELECT RAISE(ABORT, 'the outbox cursor is never deleted'); END;
CREATE TRIGGER outbox_pending_not_below_cursor BEFORE INSERT ON outbox
WHEN NEW.state = 'pending' AND NEW.seq < (SELECT low FROM outbox_cursor WHERE id = 1)
BEGIN SELECT RAISE(ABORT, 'a pending event below the outbox cursor would never be sent'); END;
-- The event at the cursor answered or parked: the cursor moves to the next pending one,
-- or past the newest event when none waits.
CREATE TRIGGER outbox_cursor_forward AFTER UPDATE OF state ON outbox
WHEN OLD.state = 'pending' AND NEW.state <> 'pending' AND OLD.seq = (SELECT low FROM outbox_cursor WHERE id = 1)
BEGIN
    UPDATE outbox_cursor SET low = IFNULL(
        (SELECT seq FROM outbox WHERE seq > OLD.seq AND state = 'pending' ORDER BY seq LIMIT 1),
        (SELECT MAX(seq) + 1 FROM outbox))
    WHERE id = 1;
END;
-- Put back in the queue (`outbox retry`): the cursor comes down to it.
CREATE TRIGGER outbox_cursor_back AFTER UPDATE OF state ON outbox
WHEN NEW.state = 'pending' AND OLD.state <> 'pending'
BEGIN UPDATE outbox_cursor SET low = NEW.seq WHERE id = 1 AND low > NEW.seq; END;
-- Version 5's void trigger looked for the redemption's pending redeem event through the
-- index this version drops; it now reads the range above the cursor.
DROP TRIGGER unsynced_redemption_voided;
CREATE TRIGGER unsynced_redemption_voided AFTER UPDATE OF voided_ms ON redemption
WHEN OLD.voided_ms IS NULL AND NEW.voided_ms IS NOT NULL
 AND EXISTS (SELECT 1 FROM outbox WHERE seq >= (SELECT low FROM outbox_cursor WHERE id = 1)
             AND redemption_id = NEW.id AND type = 'redeem' AND state = 'pending')
BEGIN
    UPDATE unsynced_out SET count = count + 1, value = value + NEW.discount;
END;
-- Nothing else moves the cursor past a waiting event.
CREATE TRIGGER outbox_cursor_skips_nothing BEFORE UPDATE OF low ON outbox_cursor
WHEN NEW.low > OLD.low
 AND EXISTS (SELECT 1 FROM outbox WHERE seq >= OLD.low AND seq < NEW.low AND state = 'pending')
BEGIN SELECT RAISE(ABORT, 'the outbox cursor never skips a pending event'); END;
