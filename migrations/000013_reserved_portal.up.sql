-- Placeholder on branch scale for migration 13, which the web portal's branch
-- holds; this file goes when that branch is merged (it changes nothing).
SELECT 1;
