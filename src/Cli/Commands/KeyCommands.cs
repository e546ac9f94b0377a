using System.CommandLine;
using System.Globalization;
using Spectre.Console;
using TaggedMirror.Cli.Api;
using TaggedMirror.Contracts.Api;

namespace TaggedMirror.Cli.Commands;

/// <summary>
/// <c>tm key create|list|revoke</c>: the controller's API keys (operator keys only may run these). A created key's
/// text is printed once, on a line of its own, and never again; <c>--quiet</c> prints only it, for scripts.
/// </summary>
internal static class KeyCommands
{
    public static Command Create()
    {
        var key = new Command("key", "Create, list and revoke the API keys callers present to the controller");
        key.Subcommands.Add(New());
        key.Subcommands.Add(List());
        key.Subcommands.Add(Revoke());
        key.Subcommands.Add(Cert());
        return key;
    }

    private static Command New()
    {
        var controller = CommonOptions.Controller();
        var role = new Option<string>("--role") { Description = "operator (manages volumes, mirrors and keys) or producer (uses the volumes named)", Required = true };
        var volumes = new Option<string>("--volumes") { Description = "Comma-separated volumes a producer key may use" };
        var readOnly = new Option<bool>("--read-only") { Description = "The producer key may read its volumes but not write them" };
        var description = new Option<string>("--description") { Description = "Who or what the key is for (at most 200 characters)" };
        var quiet = new Option<bool>("--quiet") { Description = "Print only the key" };
        var command = new Command("create", "Create a key; its text is shown this once") { controller, role, volumes, readOnly, description, quiet };
        command.SetAction((parse, ct) => Program.RunAsync(async () =>
        {
            var names = (parse.GetValue(volumes) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var n in names) CommonOptions.CheckVolumeName(n);
            var r = parse.GetValue(role)!;
            if (!AccessRoles.IsValid(r)) throw new CliException($"--role must be {AccessRoles.Operator} or {AccessRoles.Producer}, not '{r}'");
            using var http = new TmHttp(1, TimeSpan.FromSeconds(30));
            var created = await http.CreateKeyAsync(TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"),
                new CreateKeyRequest(r, names, parse.GetValue(readOnly), parse.GetValue(description)), ct);
            if (parse.GetValue(quiet))
            {
                Console.WriteLine(created.Key);
                return 0;
            }
            AnsiConsole.MarkupLine($"created key [bold]{created.Info.Id}[/]: {Markup.Escape(Scope(created.Info))}");
            AnsiConsole.MarkupLine("the key (shown this once; give it to its holder, e.g. as TM_API_KEY):");
            Console.WriteLine(created.Key);
            return 0;
        }));
        return command;
    }

    private static Command List()
    {
        var controller = CommonOptions.Controller();
        var json = new Option<bool>("--json") { Description = "Print the keys as JSON" };
        var command = new Command("list", "List the keys (never their secrets)") { controller, json };
        command.SetAction((parse, ct) => Program.RunAsync(async () =>
        {
            using var http = new TmHttp(1, TimeSpan.FromSeconds(30));
            var keys = await http.ListKeysAsync(TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"), ct);
            if (parse.GetValue(json))
            {
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(keys, new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web) { WriteIndented = true }));
                return 0;
            }
            var table = new Table().AddColumns("id", "role", "may use", "created", "revoked", "description");
            foreach (var k in keys)
            {
                table.AddRow(k.Id, k.Role, Markup.Escape(Scope(k)), k.CreatedAt.ToString("u", CultureInfo.InvariantCulture),
                    k.RevokedAt?.ToString("u", CultureInfo.InvariantCulture) ?? "", Markup.Escape(k.Description ?? ""));
            }
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }

    private static Command Revoke()
    {
        var controller = CommonOptions.Controller();
        var id = new Argument<string>("id") { Description = "The key's id (tm key list), not its text" };
        var command = new Command("revoke", "Revoke a key: refused from then on (by every controller within a second)") { id, controller };
        command.SetAction((parse, ct) => Program.RunAsync(async () =>
        {
            using var http = new TmHttp(1, TimeSpan.FromSeconds(30));
            var revoked = await http.RevokeKeyAsync(TmHttp.ParseBase(parse.GetValue(controller)!, "controller URL"), parse.GetValue(id)!, ct);
            AnsiConsole.MarkupLine($"revoked key [bold]{revoked.Id}[/] ({Markup.Escape(Scope(revoked))}) at {revoked.RevokedAt?.ToString("u", CultureInfo.InvariantCulture)}");
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// <c>tm key cert &lt;id&gt;</c>: a client certificate naming key <c>id</c> (subject CN), signed by the NBD client CA
    /// the controller trusts (<c>Controller__NbdClientCaFile</c>), written as qemu and libnbd read a credentials
    /// directory: <c>client-cert.pem</c>, <c>client-key.pem</c> (0600) and <c>ca-cert.pem</c> (the server's CA and the
    /// client CA: qemu checks its own certificate too). Made here, offline: the CA's key never reaches the controller.
    /// </summary>
    private static Command Cert()
    {
        var id = new Argument<string>("id") { Description = "The key's id (tm key list): NBD connections with this certificate act as that key" };
        var caCert = new Option<string>("--ca-cert") { Description = "The client CA's certificate (PEM)", Required = true };
        var caKey = new Option<string>("--ca-key") { Description = "The client CA's private key (PEM)", Required = true };
        var serverCa = new Option<string>("--server-ca") { Description = "The CA of the controller's TLS certificate (PEM), written into ca-cert.pem", Required = true };
        var output = new Option<string>("--out") { Description = "Directory to write the credentials to (created, mode 0700)", Required = true };
        var days = new Option<int>("--days") { Description = "Days the certificate is valid", DefaultValueFactory = _ => 365 };
        var command = new Command("cert", "Make an NBD client certificate for a key (qemu tls-creds-x509 dir=, libnbd tls-certificates=)") { id, caCert, caKey, serverCa, output, days };
        command.SetAction((parse, _) => Program.RunAsync(() =>
        {
            var keyId = parse.GetValue(id)!;
            if (!System.Text.RegularExpressions.Regex.IsMatch(keyId, "^[0-9a-f]{12}$"))
                throw new CliException($"'{keyId}' is not a key id (12 lowercase hex characters, as tm key list shows)");
            var valid = parse.GetValue(days);
            if (valid is < 1 or > 3650) throw new CliException($"--days must be from 1 to 3650, not {valid}");
            var dir = NbdClientCertificate.Write(keyId, parse.GetValue(caCert)!, parse.GetValue(caKey)!, parse.GetValue(serverCa)!, parse.GetValue(output)!, valid);
            AnsiConsole.MarkupLine($"wrote an NBD client certificate for key [bold]{keyId}[/] to {Markup.Escape(dir)} (client-cert.pem, client-key.pem, ca-cert.pem); " +
                $"qemu: tls-creds-x509,endpoint=client,dir={Markup.Escape(dir)}; libnbd: nbds://host/volume?tls-certificates={Markup.Escape(dir)}");
            return Task.FromResult(0);
        }));
        return command;
    }

    private static string Scope(ApiKeyInfo k) =>
        k.Role == AccessRoles.Operator ? "operator: every volume, mirrors and keys" : $"producer of {string.Join(", ", k.Volumes)}{(k.ReadOnly ? ", read-only" : "")}";
}
