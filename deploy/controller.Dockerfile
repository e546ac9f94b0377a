# TaggedMirror controller image. Build from the repository root:
#   docker build -f deploy/controller.Dockerfile -t taggedmirror/controller .
# .NET 10 images are Ubuntu 24.04 (noble); Microsoft ships no Debian images for .NET 10, so the tags name
# the distro explicitly and apt package names stay stable.

FROM mcr.microsoft.com/dotnet/sdk:10.0-noble AS build
WORKDIR /src
# nuget.config also lists a local folder source (/opt/nuget/packages); NuGet fails restore when a listed
# local source is missing, so it exists (empty) here and everything comes from nuget.org.
RUN mkdir -p /opt/nuget/packages
# Restore first, from the project files alone, so source edits do not invalidate the package layer.
COPY global.json nuget.config Directory.Build.props Directory.Build.targets Directory.Packages.props .editorconfig ./
COPY src/Contracts/Contracts.csproj src/Contracts/
COPY src/KafkaNative/KafkaNative.csproj src/KafkaNative/
COPY src/Hosting/Hosting.csproj src/Hosting/
COPY src/Nbd/Nbd.csproj src/Nbd/
COPY src/Controller/Controller.csproj src/Controller/
RUN dotnet restore src/Controller/Controller.csproj
COPY src/ src/
# No --no-restore: a project reference added later is restored here rather than failing the build.
RUN dotnet publish src/Controller -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble AS runtime
# No distribution librdkafka: the publish output carries librdkafka.redist's self-contained build
# (runtimes/linux-x64/native/centos8-librdkafka.so), which src/KafkaNative binds at start.
WORKDIR /app
COPY --from=build /app ./
# Where the operator key made at the first start is kept (a named volume in the compose file: a new volume takes
# this directory's owner and mode, so the non-root user below may write it and no one else read it).
RUN mkdir -p /var/lib/taggedmirror && chown "$APP_UID" /var/lib/taggedmirror && chmod 700 /var/lib/taggedmirror
# The base image's non-root user (app, uid 1654).
USER $APP_UID
ENV ASPNETCORE_URLS=http://+:8080
# NBD exports (Controller__NbdListen; the compose file sets 0.0.0.0:10809).
EXPOSE 8080 10809
ENTRYPOINT ["dotnet", "TaggedMirror.Controller.dll"]
