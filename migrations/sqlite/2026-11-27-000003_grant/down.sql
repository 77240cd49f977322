DROP TABLE pcts;
DROP TABLE rpt_grounds;
ALTER TABLE tickets DROP COLUMN claims;
DROP TABLE grant_decisions;
DROP TABLE access_requests;
DROP TABLE owner_settings;
DROP TABLE policies;
