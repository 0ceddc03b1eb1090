-- The OCS feed's sender (issue 18; docs/ocs-feed.md): every POST to the platform and its answer is kept,
-- so what the platform was told, when, and what it said can be shown later. The sender claims outbox rows
-- and records each answer through two entry functions (ocs_claim_events, ocs_record_delivery), inside its
-- own transaction; this table is their private state (DBAs read it).
CREATE TABLE ocs_deliveries (
    store_id     uuid NOT NULL REFERENCES stores (id),
    id           bigint GENERATED ALWAYS AS IDENTITY,
    kind         text NOT NULL CHECK (kind IN ('events', 'position')),
    outbox_ids   bigint[] NOT NULL DEFAULT '{}',
    day          date,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    status_code  integer,
    body         text,
    error        text,
    accepted     boolean NOT NULL,
    sender       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    -- An events delivery names the outbox rows it carried; a position delivery names its day.
    CONSTRAINT ocs_deliveries_names_what_was_sent CHECK (
        (kind = 'events' AND cardinality(outbox_ids) > 0) OR (kind = 'position' AND day IS NOT NULL)),
    -- An answer is a status code, or the error that stood for one (a timeout, a refused connection).
    CONSTRAINT ocs_deliveries_has_an_answer CHECK (status_code IS NOT NULL OR error IS NOT NULL)
);
CREATE INDEX ocs_deliveries_by_time ON ocs_deliveries (store_id, created_at);
COMMENT ON TABLE ocs_deliveries IS 'Every attempt to deliver the OCS feed and the platform''s answer: the outbox rows (kind events) or the day (kind position) sent, the attempt number, the HTTP status and body, or the error (timeout, refused connection) in its stead; accepted when the platform took it (2xx). Written by ocs_record_delivery only.';
COMMENT ON COLUMN ocs_deliveries.outbox_ids IS 'The ocs_outbox ids the POST carried (kind events), in order.';
COMMENT ON COLUMN ocs_deliveries.sender IS 'Who sent it (host:pid of the sender, or what the caller named).';
