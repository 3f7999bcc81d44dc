// Runs once, when the mongo container initialises an empty data volume (with auth on).
// Two users on the serving database: the jobs write, the dashboard only reads.
const dbName = process.env.TARMAC_MONGO_DATABASE || "tarmac";
const serving = db.getSiblingDB(dbName);
serving.createUser({
  user: "tarmac_jobs",
  pwd: process.env.TARMAC_JOBS_PASSWORD,
  roles: [{ role: "readWrite", db: dbName }],
});
serving.createUser({
  user: "tarmac_dashboard",
  pwd: process.env.TARMAC_DASHBOARD_PASSWORD,
  roles: [{ role: "read", db: dbName }],
});
