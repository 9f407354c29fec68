"""feed_publisher: a simulated market that streams quotes and trades onto Kafka."""
