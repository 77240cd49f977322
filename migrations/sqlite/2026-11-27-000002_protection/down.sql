DROP TABLE ticket_resources;
DROP TABLE tickets;
DROP TABLE resources;
