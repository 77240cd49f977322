-- Housekeeping deletes expired rows every minute; without an index on `expires_at` each delete
-- scans its whole table while holding SQLite's write lock, which stalls every write queued
-- behind it (seen as a p99 spike in the grant benchmark once DPoP proofs and client assertions
-- filled `used_jtis`). Keep in step with the other backend's folder: one logical schema.
CREATE INDEX used_jtis_expires ON used_jtis(expires_at);
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);
