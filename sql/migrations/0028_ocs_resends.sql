-- Corrections of events the OCS platform already accepted (issue 18; docs/ocs-feed.md): the platform
-- corrects a wrong event when it is sent again under the same transaction and line ids. After the mapping
-- (ocs_event_types) is corrected, ocs_resend_events marks the events it names unsent again, and the sender
-- delivers them once more, rendered anew under their old ids. Each request is kept here: who, why, which.
CREATE TABLE ocs_resends (
    store_id          uuid NOT NULL REFERENCES stores (id),
    id                bigint GENERATED ALWAYS AS IDENTITY,
    from_day          date NOT NULL,
    to_day            date NOT NULL,
    transaction_types text[],
    reason            text NOT NULL CHECK (reason <> ''),
    actor             text NOT NULL CHECK (actor <> ''),
    outbox_ids        bigint[] NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, id),
    CONSTRAINT ocs_resends_days_in_order CHECK (from_day <= to_day)
);
COMMENT ON TABLE ocs_resends IS 'Requests to send accepted OCS events again (a correction, under the same ids): the store''s days and ledger types named (NULL: every type), who asked and why, and the outbox rows marked unsent. Written by ocs_resend_events only.';
