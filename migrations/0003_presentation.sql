-- redeemd ledger, version 3: how each redemption's coupon was shown (spec/presentation.md).
-- 'static' for a CP1 code (every redemption made before this version), 'dynamic' for a
-- CP2 presentation, whose signed time presented_at (Unix seconds) is kept beside it.
ALTER TABLE redemption ADD COLUMN presentation TEXT NOT NULL DEFAULT 'static'
    CHECK (presentation IN ('static', 'dynamic'));
ALTER TABLE redemption ADD COLUMN presented_at INTEGER
    CHECK ((presentation = 'dynamic') = (presented_at IS NOT NULL));
