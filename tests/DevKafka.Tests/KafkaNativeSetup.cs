using System.Runtime.CompilerServices;
using TaggedMirror.KafkaNative;

namespace TaggedMirror.DevKafka.Tests;

internal static class KafkaNativeSetup
{
    // Before any test builds a Kafka client: the clients must bind librdkafka.redist's library, not the system's.
    [ModuleInitializer]
    internal static void Install() => Librdkafka.Install();
}
