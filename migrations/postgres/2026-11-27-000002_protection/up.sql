-- UMA protection API (PostgreSQL). Keep in step with migrations/sqlite: one logical schema.
-- Resources (UMA Federated Authorization §3): partitioned by (resource server, owner), the pair a
-- PAT binds. Scopes and language-tagged extras are JSON text.
CREATE TABLE resources (
    id TEXT PRIMARY KEY NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    rs_client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    name TEXT,
    description TEXT,
    icon_uri TEXT,
    resource_type TEXT,
    scopes TEXT NOT NULL,
    extras TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX resources_partition ON resources(rs_client_id, owner_id);
CREATE INDEX resources_owner ON resources(owner_id);

-- Permission tickets (§4): stored only as a SHA-256 hash, short-lived, single-use (the grant
-- consumes them with one conditional UPDATE). The requested permissions are JSON text. A ticket's
-- first resource is a foreign key (ON DELETE CASCADE), so deleting a resource deletes its tickets in
-- the database itself; the other resources of a multi-resource ticket are ticket_resources rows,
-- deleted with their tickets by the resource deletion. Owner and resource server follow from the
-- resource (whose own foreign keys cascade from users and clients).
CREATE TABLE tickets (
    ticket_hash TEXT PRIMARY KEY NOT NULL,
    owner_id TEXT NOT NULL,
    rs_client_id TEXT NOT NULL,
    resource_id TEXT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    permissions TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT NOT NULL
);
CREATE INDEX tickets_expires ON tickets(expires_at);
CREATE INDEX tickets_resource ON tickets(resource_id);

CREATE TABLE ticket_resources (
    ticket_hash TEXT NOT NULL REFERENCES tickets(ticket_hash) ON DELETE CASCADE,
    resource_id TEXT NOT NULL REFERENCES resources(id) ON DELETE CASCADE,
    PRIMARY KEY (ticket_hash, resource_id)
);
CREATE INDEX ticket_resources_resource ON ticket_resources(resource_id);
