-- Version 8: the store hub (spec/store-hub.md). NULL everywhere on a terminal without one.
--
-- guard:          how an acceptance was guarded: 'store' (the hub's claim won before the
--                 commit) or 'local' (the hub did not answer: the lane decided alone).
-- store_state:    what the lane knows of its claim: 'confirmed', 'unconfirmed' (settled
--                 when the hub answers) or 'conflict' (another redemption holds the
--                 coupon, or the holder's slots, at the hub); a void keeps the last value.
-- holder_slot:    the holder-slot key this redemption holds, for its release.
-- store_conflict: the claim that stood against it (JSON {terminal_id, lane, redemption_id, at}).
-- hub_release:    after a void: 'pending' until its claims are deleted at the hub, 'done'.
ALTER TABLE redemption ADD COLUMN guard TEXT CHECK (guard IS NULL OR guard IN ('store', 'local'));
ALTER TABLE redemption ADD COLUMN store_state TEXT
    CHECK (store_state IS NULL OR store_state IN ('confirmed', 'unconfirmed', 'conflict'));
ALTER TABLE redemption ADD COLUMN holder_slot TEXT;
ALTER TABLE redemption ADD COLUMN store_conflict TEXT;
ALTER TABLE redemption ADD COLUMN hub_release TEXT CHECK (hub_release IS NULL OR hub_release IN ('pending', 'done'));

-- The hub's work after an outage: few rows, found without reading every redemption.
CREATE INDEX redemption_hub_work ON redemption (id) WHERE store_state = 'unconfirmed' OR hub_release = 'pending';

-- The second cursor over the outbox: every event up to `published` (its seq) is on the
-- store's stream. Events are published in seq order, so one number says it.
CREATE TABLE hub_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), published INTEGER NOT NULL);
INSERT INTO hub_cursor (id, published) VALUES (1, 0);
