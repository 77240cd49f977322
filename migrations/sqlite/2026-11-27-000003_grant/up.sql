-- The UMA grant (SQLite). Keep in step with migrations/postgres: one logical schema.
-- Owner policies (custodia-policy): the source is JSON (a sharing template or raw Cedar).
CREATE TABLE policies (
    id TEXT PRIMARY KEY NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX policies_owner ON policies(owner_id);

-- Whether people may ask an owner for access (request_submitted, UMA Grant §3.3.6).
CREATE TABLE owner_settings (
    owner_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    accept_requests BOOLEAN NOT NULL DEFAULT 0,
    -- bumped with every policy change, so every instance knows when its compiled set is stale
    policy_version BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

-- Requests waiting for the owner: what was asked, by which client for which requesting party.
-- status: pending | approved | denied; granted scopes are JSON once decided.
CREATE TABLE access_requests (
    id TEXT PRIMARY KEY NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    rs_client_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    party TEXT NOT NULL,
    party_key TEXT NOT NULL,
    permissions TEXT NOT NULL,
    status TEXT NOT NULL,
    granted TEXT,
    created_at BIGINT NOT NULL,
    decided_at BIGINT
);
CREATE INDEX access_requests_owner ON access_requests(owner_id, status);
CREATE INDEX access_requests_party ON access_requests(client_id, party_key);

-- Every grant decision (audit, readable by the owner).
CREATE TABLE grant_decisions (
    id TEXT PRIMARY KEY NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    party TEXT NOT NULL,
    asked TEXT NOT NULL,
    granted TEXT NOT NULL,
    policies TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX grant_decisions_owner ON grant_decisions(owner_id, created_at);

-- Claims gathered for a ticket (interactive claims gathering) travel with the ticket.
ALTER TABLE tickets ADD COLUMN claims TEXT;

-- Why each scope of an RPT was granted: a policy (it still exists) or an approved request (it is
-- still approved). Introspection shows a permission only while one of its grounds holds, so
-- deleting a policy or withdrawing an approval takes effect at once.
CREATE TABLE rpt_grounds (
    jti TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    policy_id TEXT,
    request_id TEXT,
    expires_at BIGINT NOT NULL
);
CREATE INDEX rpt_grounds_jti ON rpt_grounds(jti);
CREATE INDEX rpt_grounds_expires ON rpt_grounds(expires_at);

-- Persisted claims tokens (UMA Grant §3.3.1, §5.2): stored only as a SHA-256 hash, bound to the
-- client they were issued to, revocable; the claims they stand for are JSON.
CREATE TABLE pcts (
    pct_hash TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    claims TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX pcts_expires ON pcts(expires_at);
