namespace TaggedMirror.Hosting;
