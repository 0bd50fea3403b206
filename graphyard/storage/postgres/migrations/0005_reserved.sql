-- Placeholder for migration 0005 (another branch, issue #12's encryption part); the runner needs
-- contiguous numbers. Removed when that branch's 0005 lands: never ship both.
SELECT 1;
