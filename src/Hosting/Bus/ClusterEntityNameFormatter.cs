using MassTransit;

namespace TaggedMirror.Hosting.Bus;

/// <summary>Prefixes exchange names with the cluster name, so clusters sharing a broker stay apart.</summary>
internal sealed class ClusterEntityNameFormatter(IEntityNameFormatter inner, string cluster) : IEntityNameFormatter
{
    public string FormatEntityName<T>() => $"tm.{cluster}.{inner.FormatEntityName<T>()}";
}
