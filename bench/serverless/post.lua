-- wrk script: POST the file named by $BODY_FILE (read once) with $CONTENT_TYPE to the URL given
-- on the command line. Used by bench/serverless/run.sh.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/json"
