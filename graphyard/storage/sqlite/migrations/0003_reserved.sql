-- Placeholder for migration 0003 (fault-tolerance lease columns, another branch); the runner needs
-- contiguous numbers. Removed when that branch's 0003 lands: never ship both.
SELECT 1;
