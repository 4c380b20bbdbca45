"""A hook sidecar whose OnDefineDomain answers broken XML (raw gRPC, below the SDK's checks)."""
import os
import signal
import sys
from concurrent import futures

import grpc

from netbind.hooks.proto import api_info_pb2, api_info_pb2_grpc, api_v1alpha3_pb2, api_v1alpha3_pb2_grpc


class Info(api_info_pb2_grpc.InfoServicer):
    def Info(self, request, context):
        return api_info_pb2.InfoResult(name="bad-xml", versions=["v1alpha3"],
                                       hookPoints=[api_info_pb2.HookPoint(name="OnDefineDomain", priority=0)])


class Callbacks(api_v1alpha3_pb2_grpc.CallbacksServicer):
    def OnDefineDomain(self, request, context):
        print("bad-xml sidecar: answering a truncated domain", file=sys.stderr, flush=True)
        return api_v1alpha3_pb2.OnDefineDomainResult(domainXML=b"<domain type='kvm'><name>broken")


server = grpc.server(futures.ThreadPoolExecutor(2))
api_info_pb2_grpc.add_InfoServicer_to_server(Info(), server)
api_v1alpha3_pb2_grpc.add_CallbacksServicer_to_server(Callbacks(), server)
server.add_insecure_port("unix:///var/run/kubevirt-hooks/bad.sock")
server.start()
print("bad-xml sidecar: serving", file=sys.stderr, flush=True)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
server.wait_for_termination()
