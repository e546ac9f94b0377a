namespace TaggedMirror.Contracts;
