using JasperFx.Events.Daemon;
using JasperFx.Events.Projections;
using Marten;
using MassTransit;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using Polly;
using Polly.Retry;
using TaggedMirror.Contracts.Api;
using TaggedMirror.Controller;
using TaggedMirror.Controller.Access;
using TaggedMirror.Controller.Acks;
using TaggedMirror.Controller.Api;
using TaggedMirror.Controller.BlockDevice;
using TaggedMirror.Controller.Fanout;
using TaggedMirror.Controller.FullCopy;
using TaggedMirror.Controller.Intake;
using TaggedMirror.Controller.Reads;
using TaggedMirror.Controller.Rebuild;
using TaggedMirror.Controller.Reconciliation;
using TaggedMirror.Controller.Retention;
using TaggedMirror.Controller.Status;
using TaggedMirror.Controller.Tagging;
using TaggedMirror.Controller.Verify;
using TaggedMirror.Controller.Volumes;
using TaggedMirror.Hosting;
using TaggedMirror.Hosting.Access;
using TaggedMirror.Hosting.Bus;
using TaggedMirror.Hosting.Events;
using TaggedMirror.Hosting.Health;
using TaggedMirror.Hosting.Telemetry;
using TaggedMirror.Nbd.Server;

// The content root is where the program is, not the directory it was started from: its appsettings.json (the log
// levels that keep per-request and per-batch lines of the libraries off the console) was ignored when run from elsewhere.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
var options = builder.AddTaggedMirrorDefaults("Controller");
var controller = builder.Configuration.GetSection(ControllerOptions.Section).Get<ControllerOptions>() ?? new ControllerOptions();
controller.LoadNbdCertificate(builder.Configuration);
controller.Validate();

// The epoch is taken before anything else: no tag of this run may exist before it is committed.
var dataSource = PostgresDataSource.Create(options.Postgres, "Controller");
var reconciliation = new ReconciliationProjection(options.Schema, controller);
var reconciliationCommits = new ReconciliationCommits(reconciliation.Pacing);
// Started while PostgreSQL is away (a host reboot, a restart of both): wait for it rather than exit.
var untilPostgres = new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
{
    ShouldHandle = new PredicateBuilder().Handle<Exception>(TransientErrors.IsTransient),
    MaxRetryAttempts = int.MaxValue,
    Delay = TimeSpan.FromMilliseconds(200),
    MaxDelay = TimeSpan.FromSeconds(2),
    BackoffType = DelayBackoffType.Exponential,
    OnRetry = a =>
    {
        Console.Error.WriteLine($"Controller {controller.Id}: waiting for PostgreSQL ({a.Outcome.Exception?.Message})");
        return default;
    },
}).Build();
var identity = new ControllerIdentity(dataSource, options.Schema, controller.Id);
int epoch;
try
{
    epoch = await untilPostgres.ExecuteAsync(async ct =>
{
    await ControllerSchema.MigrateAsync(dataSource, options.Schema, ct);
    await EventStoreSetup.MigrateAsync(dataSource, options.Schema, ct);
    // Before the epoch: a second process with a live id must not even start one.
    await identity.AcquireAsync(TimeSpan.FromSeconds(5), ct);
    return await TagGenerator.BeginEpochAsync(dataSource, options.Schema, controller.Id, ct);
}, CancellationToken.None);
}
catch (ControllerIdInUseException ex)
{
    Console.Error.WriteLine(ex.Message);
    Environment.Exit(2);
    return;
}

builder.Services.AddSingleton(controller);
builder.Services.AddSingleton(identity);
// The volume catalog and the resync log follow their streams inline; reconciliation runs in Marten's async daemon,
// on one controller at a time, started and watched by ReconciliationRunner (not Marten's hot/cold coordinator).
builder.Services.AddMarten(_ =>
{
    var o = new StoreOptions();
    EventStoreSetup.Configure(o, dataSource, options.Schema);
    o.Events.MapEventType<VolumeCreated>(VolumeEventTypes.Created);
    o.Events.MapEventType<MirrorStateChanged>(VolumeEventTypes.MirrorStateChanged);
    o.Events.MapEventType<ExtensionReserved>(VolumeEventTypes.ExtensionReserved);
    o.Events.MapEventType<VerifyCompleted>(VolumeEventTypes.VerifyCompleted);
    o.Events.MapEventType<MirrorAttached>(VolumeEventTypes.MirrorAttached);
    o.Events.MapEventType<MirrorDetached>(VolumeEventTypes.MirrorDetached);
    o.Events.MapEventType<VolumeGrown>(VolumeEventTypes.Grown);
    o.Events.MapEventType<VolumeDeleted>(VolumeEventTypes.Deleted);
    o.Events.MapEventType<ResyncCompleted>(ResyncEventTypes.Completed);
    o.Projections.Add(new VolumeCatalogProjection(options.Schema), ProjectionLifecycle.Inline);
    o.Projections.Add(new ResyncLogProjection(options.Schema), ProjectionLifecycle.Inline);
    o.Projections.Add(reconciliation, ProjectionLifecycle.Async, ReconciliationProjection.Name);
    o.Projections.AsyncListeners.Add(reconciliationCommits);
    return o;
});
builder.Services.AddSingleton(sp => new EventStreams(sp.GetRequiredService<IDocumentStore>(), dataSource, options.Schema));
builder.Services.AddSingleton(reconciliationCommits);
builder.Services.AddSingleton(new ApiKeyLookup(dataSource, options.Schema));
builder.Services.AddSingleton<ApiKeyStore>();
builder.Services.AddSingleton(new ServiceSecret(dataSource, options.Schema));
builder.Services.AddTransient<ServiceSecretHandler>();
builder.Services.AddSingleton(new TagGenerator(controller.Id, epoch));
builder.Services.AddSingleton<VolumeCatalog>();
builder.Services.AddSingleton<BlockWritersService>();
builder.Services.AddSingleton<DeviceLog>();
builder.Services.AddSingleton<WritePipeline>();
builder.Services.AddSingleton<DeviceReader>();
builder.Services.AddSingleton<VolumeReader>();
builder.Services.AddSingleton<StatusService>();
builder.Services.AddSingleton<ControllerTelemetry>();
builder.Services.AddHostedService<DeviceLagMonitor>();
builder.Services.AddSingleton<LogProgress>();
builder.Services.AddSingleton<ResyncService>();
builder.Services.AddSingleton(new ByteRate(controller.ResyncMaxBytesPerSecond));
builder.Services.AddSingleton<FullCopyService>();
builder.Services.AddSingleton<VerifyService>();
builder.Services.AddHostedService<VerifySchedule>();
builder.Services.AddSingleton<RebuildService>();
builder.Services.AddSingleton<VolumeChanges>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<RebuildService>());
builder.Services.AddSingleton<CopySources>();
builder.Services.AddSingleton(reconciliation);
builder.Services.AddHostedService<ReconciliationService>();
builder.Services.AddHostedService(sp => new ReconciliationRunner(
    sp.GetRequiredService<IDocumentStore>(), dataSource, options.Schema, controller, sp.GetRequiredService<ILoggerFactory>()));
builder.Services.AddHostedService<MirrorMaintenance>();
builder.Services.AddHostedService(sp => new EventRetention(dataSource, options.Schema, controller,
    sp.GetRequiredService<ControllerTelemetry>().EventsPruned, sp.GetRequiredService<ILogger<EventRetention>>()));
// The daemon reads the event store by ranges of sequence numbers: statistics from the start (docs/benchmarks.md, "A fresh stack").
builder.Services.AddHostedService(sp => new FirstStatistics(
    dataSource, options.Schema, ["mt_events", "mt_streams"], sp.GetRequiredService<ILogger<FirstStatistics>>()));
// Agents serve the controller (this secret) and operators only (docs/design.md, "Access").
builder.Services.AddHttpClient("devices", c => c.Timeout = TimeSpan.FromSeconds(10)).AddHttpMessageHandler<ServiceSecretHandler>();
builder.Services.AddHostedService<BarrierPublisher>();
builder.Services.AddHostedService<LeaseKeeper>();
builder.Services.AddSingleton<IntakeStore>();
builder.Services.AddSingleton<IntakeAccess>();
builder.Services.AddSingleton<IntakeTelemetry>();
builder.Services.AddSingleton<OutcomePublisher>();
builder.Services.AddSingleton<RequestHandler>();
builder.Services.AddHostedService<IntakeService>();
builder.Services.AddHostedService<IntakeRetention>();
// The block front end: every owned volume an NBD export; its spans and meters join the controller's when exported.
builder.Services.AddSingleton<VolumeExports>();
builder.Services.AddHostedService<NbdListener>();
builder.Services.ConfigureOpenTelemetryTracerProvider(t => t.AddSource(NbdTelemetry.Name));
builder.Services.ConfigureOpenTelemetryMeterProvider(m => m.AddMeter(NbdTelemetry.Name));
builder.Services.AddTaggedMirrorBus(options,
    x =>
    {
        x.AddConsumer<DeviceEventsConsumer>();
        x.AddConsumer<ReconciliationConsumer>();
        x.AddConsumer<ResyncBatchConsumer>();
    },
    new Dictionary<string, Action<IReceiveEndpointConfigurator, IBusRegistrationContext>>
    {
        // Acknowledgements have a queue to themselves: nothing on it waits, so they are never stuck behind a resync.
        [$"controller-{controller.Id}"] = (e, context) => e.ConfigureConsumer<DeviceEventsConsumer>(context),
        // Resyncs wait for acknowledgements; they come in batches, so a volume's missed writes are coalesced, and
        // two batches run at once (one volume's at a time: its resync lock).
        [$"controller-{controller.Id}-reconciliation"] = (e, context) =>
        {
            e.PrefetchCount = 2 * ResyncBatchConsumer.MessageLimit;
            e.ConcurrentMessageLimit = 2 * ResyncBatchConsumer.MessageLimit;
            e.ConfigureConsumer<ReconciliationConsumer>(context);
            e.ConfigureConsumer<ResyncBatchConsumer>(context, c => c.Options<BatchOptions>(o => o
                .SetMessageLimit(ResyncBatchConsumer.MessageLimit).SetTimeLimit(ResyncBatchConsumer.TimeLimit)
                .SetTimeLimitStart(BatchTimeLimitStart.FromLast).SetConcurrencyLimit(2)));
        },
    });

var app = builder.Build();
_ = app.Services.GetRequiredService<ControllerTelemetry>(); // its gauges exist from the start
var catalog = app.Services.GetRequiredService<VolumeCatalog>();
catalog.Epoch = epoch;
await untilPostgres.ExecuteAsync(async ct => await catalog.LoadAsync(ct), CancellationToken.None);
try
{
    await untilPostgres.ExecuteAsync(async ct =>
    {
        await app.Services.GetRequiredService<ServiceSecret>().EnsureAsync(ct);
        await app.Services.GetRequiredService<ApiKeyStore>().EnsureOperatorKeyAsync(controller.OperatorKeyPath, ct);
    }, CancellationToken.None);
}
catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
{
    Console.Error.WriteLine($"Controller {controller.Id}: cannot write the operator key to {controller.OperatorKeyPath} ({ex.Message}); set Controller__OperatorKeyFile to a path this user may write");
    Environment.Exit(2);
    return;
}

// Every request but the health checks carries an API key that allows what it asks (docs/design.md, "Access").
app.UseMiddleware<AccessControl>();
app.MapVolumeEndpoints();
app.MapVerifyEndpoints();
app.MapRebuildEndpoints();
app.MapVolumeChangeEndpoints();
app.MapKeyEndpoints();
app.MapProcessDiagnostics();
app.MapTaggedMirrorHealth();
app.MapGet("/controller", (TagGenerator tags, WritePipeline pipeline) =>
    Results.Ok(new ControllerInfo(tags.ControllerId, tags.Epoch, tags.Issued, pipeline.InflightCount))).Requires(AccessNeed.AnyKey);
app.Logger.LogInformation("Controller {Id} started epoch {Epoch}", controller.Id, epoch);
await app.RunAsync();
