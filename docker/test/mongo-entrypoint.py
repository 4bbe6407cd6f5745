"""A MongoDB-wire server (SecantusDB) as the official mongo image starts: on an empty volume
MONGO_INITDB_ROOT_USERNAME / _PASSWORD become a user (created without auth on loopback),
then the server runs on 0.0.0.0:27017 with SCRAM authentication required."""
import os
import subprocess
import sys
import time

DATA = "/data/db"
user = os.environ.get("MONGO_INITDB_ROOT_USERNAME", "")
password = os.environ.get("MONGO_INITDB_ROOT_PASSWORD", "")
server = [sys.executable, "-m", "secantus", "--standalone", "--storage-path", DATA]
os.makedirs(DATA, exist_ok=True)
marker = os.path.join(DATA, ".troupe-users")
if user and not os.path.exists(marker):
    import pymongo

    proc = subprocess.Popen(server + ["--host", "127.0.0.1", "--port", "27018"])
    client = pymongo.MongoClient("mongodb://127.0.0.1:27018", serverSelectionTimeoutMS=1000)
    for _ in range(100):
        try:
            client.admin.command("ping")
            break
        except pymongo.errors.PyMongoError:
            time.sleep(0.2)
    client.admin.command("createUser", user, pwd=password, roles=["root"])
    proc.terminate()
    proc.wait()
    open(marker, "w").close()
args = server + ["--host", "0.0.0.0", "--port", "27017"] + (["--auth"] if user else [])
os.execv(sys.executable, args)
