"""KubeVirt hook protocol: our .proto files and the code grpcio-tools generates from them.

The generated ``*_pb2.py`` / ``*_pb2_grpc.py`` are committed (so installs need no grpcio-tools);
``python -m netbind.hooks.proto._generate`` rebuilds them and a test checks they are current.
"""
