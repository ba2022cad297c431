"""aiokafka runtime: producer, consumer loop, DLQ, admin."""
