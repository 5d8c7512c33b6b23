-- wrk script: POST the file named by $BODY_FILE (read once) with $CONTENT_TYPE to the URL given
-- on the command line; with $HEADER_LEN set, also the Inference-Header-Content-Length header (KServe
-- binary tensors). Used by bench/serverless/run.sh and ab.sh.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE") or "application/json"
local hlen = os.getenv("HEADER_LEN")
if hlen ~= nil and hlen ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = hlen
end
