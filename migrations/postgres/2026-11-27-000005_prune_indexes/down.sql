DROP INDEX refresh_tokens_expires;
DROP INDEX sessions_expires;
DROP INDEX used_jtis_expires;
