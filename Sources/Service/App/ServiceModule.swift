// Service module: REST resources (issue 5).
