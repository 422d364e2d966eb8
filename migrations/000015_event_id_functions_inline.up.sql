-- outbox.event_seq() and outbox.event_time() read an event's position and
-- creation time back from its id. They were declared STRICT around a CASE,
-- which is not strict itself, so Postgres could not inline them: every call ran
-- through the SQL-function executor, about 6.6 µs each, and the delivery worker's
-- lookup of an event by id made five calls per delivery. Without STRICT they
-- inline into the query (a NULL id still gives NULL: the CASE finds no match).
-- Their tests are now plain comparisons and translate(), not regular
-- expressions, with the same meaning: an id of this installation reads
-- evt_<12 hex digits><its 8-character tag><12 hex digits>, and any evt_ id
-- whose first 12 hex digits are a time gives that time.

CREATE OR REPLACE FUNCTION outbox.event_time(event_id text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN left(event_id, 4) = 'evt_' AND length(event_id) >= 16
            AND translate(substr(event_id, 5, 12), '0123456789abcdef', '') = ''
        THEN to_timestamp(('x' || lpad(substr(event_id, 5, 12), 16, '0'))::bit(64)::bigint / 1000.0) END
$$;

DO $migration$
DECLARE
    tag text := (SELECT s.event_id_tag FROM outbox.settings AS s);
BEGIN
    EXECUTE replace($f$
        CREATE OR REPLACE FUNCTION outbox.event_seq(event_id text) RETURNS bigint
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$
            SELECT CASE WHEN length(event_id) = 36 AND left(event_id, 4) = 'evt_'
                    AND substr(event_id, 17, 8) = 'TAGTAGTA'
                    AND translate(substr(event_id, 5, 12) || right(event_id, 12), '0123456789abcdef', '') = ''
                THEN ('x' || lpad(right(event_id, 12), 16, '0'))::bit(64)::bigint END
        $$;
    $f$, 'TAGTAGTA', tag);
END
$migration$;
