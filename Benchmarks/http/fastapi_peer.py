"""FastAPI + uvicorn peer for the HTTP benchmark: the same two routes as `pfc-server serve --echo`.

Run: python3 -m uvicorn fastapi_peer:app --host 127.0.0.1 --port 18180 --workers 2 --no-access-log
"""
from fastapi import FastAPI, Request, Response

app = FastAPI()


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


@app.post("/echo")
async def echo(request: Request):
    # Echo the JSON body as received (no re-encoding), exactly like the Swift /echo route.
    body = await request.body()
    return Response(content=body, media_type="application/json")
