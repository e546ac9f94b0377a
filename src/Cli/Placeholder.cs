namespace TaggedMirror.Cli;
internal static class Program { public static void Main() { } }
