-- Citus copies a reference table to a worker that joins the cluster, and moves shards when it
-- rebalances, by logical replication, which needs each table's replica identity (issue 16: a third worker
-- could not join). batch_lot_holds has no primary key: its one-per-scope key has nullable columns, so it
-- cannot be the identity; the whole row is. Holds change rarely, so logging whole old rows costs nothing.
ALTER TABLE batch_lot_holds REPLICA IDENTITY FULL;
