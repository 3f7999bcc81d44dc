"""Pure Spark transformations, DataFrame -> DataFrame: cleaning, flight state, KPIs; no I/O."""
