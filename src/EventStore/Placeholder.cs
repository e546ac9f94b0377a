namespace TaggedMirror.EventStore;
