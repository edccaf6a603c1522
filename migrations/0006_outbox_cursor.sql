-- redeemd ledger, version 6: the waiting redeem events found from a cursor, not an index
-- (issue 8).
--
-- Every redemption's commit wrote a page of `outbox_pending` (the index of the events
-- waiting for upstream) besides the event's own page. Redeem events are answered roughly
-- in the order they were made, so the waiting ones sit at the end of the outbox: one row,
-- `outbox_cursor`, holds `low`, the oldest pending redeem event's seq (one past the newest
-- event when none waits). The waiting redeem events are then the pending ones of the
-- range [low, newest] of the outbox's own key, which costs what the backlog costs and no
-- page a redemption writes. Triggers keep `low`: it rises when the redeem event at it
-- leaves the queue or a void takes its place, falls to one put back in it, and the ledger
-- refuses a pending redeem event below it.
--
-- Voids keep an index of their own. A void waits behind its redemption's parked redeem
-- event (an event never overtakes an earlier one of its redemption), for as long as
-- nobody retries that one: under the cursor it would pin it, and every read of the queue
-- would walk all the events made since. Voids are few, and a redemption's commit writes
-- none. (A redeem event is its redemption's first event: nothing holds it back.) Building
-- their index reads the outbox once, at the upgrade, as version 4's indexes did.

-- The cursor starts at the oldest waiting redeem event, found through the index this
-- version drops (without it, the search would read the whole outbox).
CREATE TABLE outbox_cursor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    low INTEGER NOT NULL
);
INSERT INTO outbox_cursor (id, low)
    SELECT 1, IFNULL((SELECT MIN(seq) FROM outbox WHERE state = 'pending' AND type = 'redeem'),
                     (SELECT IFNULL(MAX(seq), 0) + 1 FROM outbox));
CREATE INDEX outbox_pending_void ON outbox (seq, redemption_id) WHERE state = 'pending' AND type = 'void';
DROP INDEX outbox_pending;

CREATE TRIGGER outbox_cursor_never_deleted BEFORE DELETE ON outbox_cursor
BEGIN SELECT RAISE(ABORT, 'the outbox cursor is never deleted'); END;
CREATE TRIGGER outbox_redeem_not_below_cursor BEFORE INSERT ON outbox
WHEN NEW.state = 'pending' AND NEW.type = 'redeem' AND NEW.seq < (SELECT low FROM outbox_cursor WHERE id = 1)
BEGIN SELECT RAISE(ABORT, 'a pending redeem event below the outbox cursor would never be sent'); END;
-- The redeem event at the cursor answered or parked: the cursor moves to the next
-- pending redeem event, or past the newest event when none waits.
CREATE TRIGGER outbox_cursor_forward AFTER UPDATE OF state ON outbox
WHEN OLD.state = 'pending' AND NEW.state <> 'pending' AND OLD.type = 'redeem'
 AND OLD.seq = (SELECT low FROM outbox_cursor WHERE id = 1)
BEGIN
    UPDATE outbox_cursor SET low = IFNULL(
        (SELECT seq FROM outbox WHERE seq > OLD.seq AND state = 'pending' AND type = 'redeem' ORDER BY seq LIMIT 1),
        (SELECT MAX(seq) + 1 FROM outbox))
    WHERE id = 1;
END;
-- A void made while no redeem event waits takes the cursor's place: the cursor moves past
-- it, or it would stay there while redeem events come and go above it, and every read of
-- the queue would walk them all.
CREATE TRIGGER outbox_cursor_past_void AFTER INSERT ON outbox
WHEN NEW.type <> 'redeem' AND NEW.seq = (SELECT low FROM outbox_cursor WHERE id = 1)
BEGIN UPDATE outbox_cursor SET low = NEW.seq + 1 WHERE id = 1; END;
-- A redeem event put back in the queue (`outbox retry`): the cursor comes down to it.
CREATE TRIGGER outbox_cursor_back AFTER UPDATE OF state ON outbox
WHEN NEW.state = 'pending' AND OLD.state <> 'pending' AND NEW.type = 'redeem'
BEGIN UPDATE outbox_cursor SET low = NEW.seq WHERE id = 1 AND low > NEW.seq; END;
-- Nothing else moves the cursor past a waiting redeem event.
CREATE TRIGGER outbox_cursor_skips_nothing BEFORE UPDATE OF low ON outbox_cursor
WHEN NEW.low > OLD.low
 AND EXISTS (SELECT 1 FROM outbox WHERE seq >= OLD.low AND seq < NEW.low AND state = 'pending' AND type = 'redeem')
BEGIN SELECT RAISE(ABORT, 'the outbox cursor never skips a pending redeem event'); END;

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
