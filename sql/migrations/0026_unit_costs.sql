-- Book values for the OCS feed (issue 18): what a batch cost the store, per unit, as its shipment said (the
-- OCS ASN's UnitPrice). NULL: not known (stock before this migration, or a receipt that did not say). The
-- feed values a movement and a position at it; an unknown cost values at 0 (docs/ocs-feed.md).
ALTER TABLE ocs_inventory ADD COLUMN unit_cost numeric(14, 4);
ALTER TABLE ocs_shipment_lines ADD COLUMN unit_cost numeric(14, 4);
COMMENT ON COLUMN ocs_inventory.unit_cost IS 'What one unit of this batch cost the store (its latest receipt''s unit_cost); NULL when no receipt said. The OCS feed''s book value.';
COMMENT ON COLUMN ocs_shipment_lines.unit_cost IS 'The unit cost the shipment line gave (the ASN''s UnitPrice per unit), if any.';
