"""What the gRPC scripts beside this file share: the status a tritonclient call ends with.
(Imported by script name: Python puts a script's own folder first on sys.path.)"""
from tritonclient.utils import InferenceServerException


def status_of(fn):
    """Runs fn(); "OK" if it returned, else the gRPC status, e.g. "StatusCode.UNAUTHENTICATED"."""
    try:
        fn()
    except InferenceServerException as e:
        return e.status()
    return "OK"
