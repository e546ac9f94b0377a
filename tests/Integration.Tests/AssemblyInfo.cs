// Each test starts its own processes and mock Kafka cluster; on two cores they run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
