-- Version 7: who voided a redemption, next to the reason already kept.
--
-- `by`: 'checkout' (its checkout was cancelled), 'till' (the POS token), 'cashier' or
-- 'manager' (a page session), 'command_line' (`redeemd void`). Voids recorded before
-- this version keep NULL: who it was is unknown, and nothing is guessed.
ALTER TABLE void ADD COLUMN by TEXT
    CHECK (by IS NULL OR by IN ('checkout', 'till', 'cashier', 'manager', 'command_line'));

-- The manager's page shows upstream's words for the redemptions to check: their redeem
-- events answered `conflict` or `rejected`, or parked. Few rows; the day's report finds
-- them without reading the outbox.
CREATE INDEX outbox_flagged ON outbox (redemption_id) WHERE state IN ('conflict', 'rejected', 'parked');
