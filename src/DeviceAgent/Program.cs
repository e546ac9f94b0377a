using JasperFx.Events.Projections;
using Marten;
using TaggedMirror.DeviceAgent;
using TaggedMirror.DeviceAgent.Api;
using TaggedMirror.DeviceAgent.BlockStore;
using TaggedMirror.DeviceAgent.Consumption;
using TaggedMirror.DeviceAgent.TagTable;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Access;
using TaggedMirror.Hosting.Bus;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Health;
using TaggedMirror.Hosting.Telemetry;

// The content root is where the program is, not the directory it was started from: its appsettings.json (the log
// levels that keep per-request and per-batch lines of the libraries off the console) was ignored when run from elsewhere.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
var options = builder.AddTaggedMirrorDefaults("DeviceAgent");
var agent = builder.Configuration.GetSection(AgentOptions.Section).Get<AgentOptions>() ?? new AgentOptions();
agent.Validate();
builder.Services.Configure<AgentOptions>(builder.Configuration.GetSection(AgentOptions.Section));
builder.Services.AddSingleton(new ObjectFiles(agent.DataDirectory));
builder.Services.AddSingleton<DeviceStatus>();
builder.Services.AddSingleton<RebuildRequests>();
builder.Services.AddSingleton<AgentTelemetry>();
// The live tag table follows the device's stream inline, in the transaction that records each batch.
builder.Services.AddMarten(sp =>
{
    var o = new StoreOptions();
    EventStoreSetup.Configure(o, sp.GetRequiredService<Npgsql.NpgsqlDataSource>(), options.Schema);
    o.Projections.Add(new LiveTagTableProjection(options.Schema), ProjectionLifecycle.Inline);
    return o;
});
builder.Services.AddSingleton(sp => new EventStreams(
    sp.GetRequiredService<IDocumentStore>(), sp.GetRequiredService<Npgsql.NpgsqlDataSource>(), options.Schema));
builder.Services.AddTaggedMirrorBus(options);
builder.Services.AddHostedService<DeviceConsumer>();
builder.Services.AddSingleton(sp => new ServiceSecret(sp.GetRequiredService<Npgsql.NpgsqlDataSource>(), options.Schema));
builder.Services.AddSingleton(sp => new ApiKeyLookup(sp.GetRequiredService<Npgsql.NpgsqlDataSource>(), options.Schema));

var app = builder.Build();
_ = app.Services.GetRequiredService<AgentTelemetry>(); // its gauges exist from the start
var store = app.Services.GetRequiredService<EventStreams>();
await DeviceSchema.MigrateAsync(store.DataSource, options.Schema, app.Lifetime.ApplicationStopping);
await EventStoreSetup.MigrateAsync(store.DataSource, options.Schema, app.Lifetime.ApplicationStopping);

// The controller and operators only (docs/design.md, "Access").
app.UseMiddleware<AgentAccess>();
app.MapReadEndpoints(agent.DeviceId);
app.MapRebuildEndpoints(agent.DeviceId);
app.MapProcessDiagnostics();
app.MapTaggedMirrorHealth();
// Checksums still waiting for their periodic sync are made durable once the apply loop has stopped.
app.Lifetime.ApplicationStopped.Register(() => app.Services.GetRequiredService<ObjectFiles>().Dispose());
await app.StartAsync();
var url = string.IsNullOrEmpty(agent.PublicUrl) ? app.Urls.First() : agent.PublicUrl;
await new DeviceRepository(store, agent.DeviceId).RegisterAsync(url, app.Lifetime.ApplicationStopping);
app.Logger.LogInformation("Device agent {Device} serving reads at {Url}, data in {Dir}", agent.DeviceId, url, Path.GetFullPath(agent.DataDirectory));
await app.WaitForShutdownAsync();
