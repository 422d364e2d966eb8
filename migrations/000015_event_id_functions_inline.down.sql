CREATE OR REPLACE FUNCTION outbox.event_time(event_id text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$
    SELECT CASE WHEN event_id ~ '^evt_[0-9a-f]{12}'
        THEN to_timestamp(('x' || lpad(substr(event_id, 5, 12), 16, '0'))::bit(64)::bigint / 1000.0) END
$$;

DO $migration$
DECLARE
    tag text := (SELECT s.event_id_tag FROM outbox.settings AS s);
BEGIN
    EXECUTE replace($f$
        CREATE OR REPLACE FUNCTION outbox.event_seq(event_id text) RETURNS bigint
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        AS $$
            SELECT CASE WHEN event_id ~ '^evt_[0-9a-f]{12}TAGTAGTA[0-9a-f]{12}$'
                THEN ('x' || lpad(right(event_id, 12), 16, '0'))::bit(64)::bigint END
        $$;
    $f$, 'TAGTAGTA', tag);
END
$migration$;
