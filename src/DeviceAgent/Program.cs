using TaggedMirror.DeviceAgent;
using TaggedMirror.DeviceAgent.Api;
using TaggedMirror.DeviceAgent.BlockStore;
using TaggedMirror.DeviceAgent.Consumption;
using TaggedMirror.DeviceAgent.TagTable;
using TaggedMirror.EventStore;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Bus;
using TaggedMirror.Hosting.Health;
using TaggedMirror.Hosting.Schema;
using TaggedMirror.Hosting.Telemetry;

var builder = WebApplication.CreateBuilder(args);
var options = builder.AddTaggedMirrorDefaults("DeviceAgent");
var agent = builder.Configuration.GetSection(AgentOptions.Section).Get<AgentOptions>() ?? new AgentOptions();
agent.Validate();
builder.Services.Configure<AgentOptions>(builder.Configuration.GetSection(AgentOptions.Section));
builder.Services.AddSingleton(new ObjectFiles(agent.DataDirectory));
builder.Services.AddSingleton<DeviceStatus>();
builder.Services.AddSingleton<AgentTelemetry>();
builder.Services.AddSingleton(sp => new PgEventStore(
    sp.GetRequiredService<Npgsql.NpgsqlDataSource>(), options.Schema, [new LiveTagTableProjection(options.Schema)]));
builder.Services.AddTaggedMirrorBus(options);
builder.Services.AddHostedService<DeviceConsumer>();

var app = builder.Build();
_ = app.Services.GetRequiredService<AgentTelemetry>(); // its gauges exist from the start
var store = app.Services.GetRequiredService<PgEventStore>();
await ClusterSchema.MigrateAsync(store.DataSource, options.Schema, app.Lifetime.ApplicationStopping);
await store.MigrateAsync(app.Lifetime.ApplicationStopping);

app.MapReadEndpoints(agent.DeviceId);
app.MapProcessDiagnostics();
app.MapTaggedMirrorHealth();
await app.StartAsync();
var url = string.IsNullOrEmpty(agent.PublicUrl) ? app.Urls.First() : agent.PublicUrl;
await new DeviceRepository(store, agent.DeviceId).RegisterAsync(url, app.Lifetime.ApplicationStopping);
app.Logger.LogInformation("Device agent {Device} serving reads at {Url}, data in {Dir}", agent.DeviceId, url, Path.GetFullPath(agent.DataDirectory));
await app.WaitForShutdownAsync();
