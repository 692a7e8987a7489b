// Generated from docs/openapi.json (the committed OpenAPI document); a test keeps the two identical.

/// The OpenAPI 3 description of the /v1 API, served at `GET /v1/openapi.json`.
public enum OpenAPIDocument {
    public static let json = #"""
{
  "components": {
    "schemas": {
      "ActionResult": {
        "properties": {
          "job": {
            "allOf": [
              {
                "$ref": "#/components/schemas/Job"
              }
            ],
            "nullable": true
          },
          "message": {
            "type": "string"
          },
          "ok": {
            "type": "boolean"
          }
        },
        "required": [
          "ok",
          "message"
        ],
        "type": "object"
      },
      "Batch": {
        "properties": {
          "batch": {
            "type": "string"
          },
          "billed_not_delivered_jobs": {
            "description": "how many jobs were billed but ended without a delivered file",
            "minimum": 0,
            "type": "integer"
          },
          "billed_not_delivered_usd": {
            "description": "the part of cost_usd billed for jobs that ended without a delivered file (failed QC, expired, cancelled during delivery)",
            "minimum": 0,
            "type": "number"
          },
          "budget_usd": {
            "nullable": true,
            "type": "number"
          },
          "completed_at": {
            "format": "date-time",
            "nullable": true,
            "type": "string"
          },
          "cost_usd": {
            "description": "USD billed so far: every job whose task SUCCEEDED, delivered or not",
            "minimum": 0,
            "type": "number"
          },
          "created_at": {
            "format": "date-time",
            "type": "string"
          },
          "deadline": {
            "format": "date-time",
            "nullable": true,
            "type": "string"
          },
          "deadline_at_risk": {
            "type": "boolean"
          },
          "done": {
            "minimum": 0,
            "type": "integer"
          },
          "estimated_cost_usd": {
            "nullable": true,
            "type": "number"
          },
          "eta": {
            "allOf": [
              {
                "$ref": "#/components/schemas/ETA"
              }
            ],
            "nullable": true
          },
          "jobs": {
            "additionalProperties": {
              "minimum": 0,
              "type": "integer"
            },
            "description": "jobs by state; states with no jobs may be absent",
            "type": "object"
          },
          "paused": {
            "type": "boolean"
          },
          "priority": {
            "enum": [
              "rush",
              "normal",
              "bulk"
            ],
            "type": "string"
          },
          "total": {
            "minimum": 0,
            "type": "integer"
          }
        },
        "required": [
          "batch",
          "priority",
          "paused",
          "jobs",
          "total",
          "done",
          "cost_usd",
          "deadline_at_risk",
          "created_at",
          "billed_not_delivered_usd",
          "billed_not_delivered_jobs"
        ],
        "type": "object"
      },
      "BatchList": {
        "properties": {
          "batches": {
            "items": {
              "$ref": "#/components/schemas/Batch"
            },
            "type": "array"
          }
        },
        "required": [
          "batches"
        ],
        "type": "object"
      },
      "ETA": {
        "properties": {
          "p50": {
            "format": "date-time",
            "type": "string"
          },
          "p90": {
            "format": "date-time",
            "type": "string"
          }
        },
        "required": [
          "p50",
          "p90"
        ],
        "type": "object"
      },
      "Error": {
        "properties": {
          "error": {
            "properties": {
              "code": {
                "type": "string"
              },
              "hint": {
                "nullable": true,
                "type": "string"
              },
              "message": {
                "type": "string"
              }
            },
            "required": [
              "code",
              "message"
            ],
            "type": "object"
          }
        },
        "required": [
          "error"
        ],
        "type": "object"
      },
      "Job": {
        "properties": {
          "aspect_ratio": {
            "enum": [
              "16:9",
              "9:16",
              "1:1",
              "4:3",
              "3:4"
            ],
            "type": "string"
          },
          "attempt": {
            "minimum": 0,
            "type": "integer"
          },
          "batch": {
            "type": "string"
          },
          "cost_usd": {
            "nullable": true,
            "type": "number"
          },
          "created_at": {
            "format": "date-time",
            "type": "string"
          },
          "deadline": {
            "format": "date-time",
            "nullable": true,
            "type": "string"
          },
          "duration_s": {
            "maximum": 10,
            "minimum": 2,
            "type": "integer"
          },
          "estimated_cost_usd": {
            "nullable": true,
            "type": "number"
          },
          "eta": {
            "allOf": [
              {
                "$ref": "#/components/schemas/ETA"
              }
            ],
            "nullable": true
          },
          "id": {
            "type": "string"
          },
          "job": {
            "type": "string"
          },
          "model": {
            "enum": [
              "wan2.6-r2v",
              "wan2.6-r2v-flash"
            ],
            "type": "string"
          },
          "output": {
            "nullable": true,
            "type": "string"
          },
          "priority": {
            "enum": [
              "rush",
              "normal",
              "bulk"
            ],
            "type": "string"
          },
          "reason": {
            "nullable": true,
            "type": "string"
          },
          "resolution": {
            "enum": [
              "720p",
              "1080p"
            ],
            "type": "string"
          },
          "sha256": {
            "nullable": true,
            "type": "string"
          },
          "state": {
            "enum": [
              "queued",
              "held",
              "retrying",
              "submitting",
              "in_doubt",
              "pending",
              "running",
              "downloading",
              "verifying",
              "succeeded",
              "failed",
              "cancelled",
              "expired"
            ],
            "type": "string"
          },
          "task_id": {
            "nullable": true,
            "type": "string"
          },
          "updated_at": {
            "format": "date-time",
            "type": "string"
          }
        },
        "required": [
          "job",
          "batch",
          "id",
          "state",
          "priority",
          "model",
          "resolution",
          "aspect_ratio",
          "duration_s",
          "attempt",
          "created_at",
          "updated_at"
        ],
        "type": "object"
      },
      "JobDetail": {
        "properties": {
          "attempts": {
            "items": {
              "properties": {
                "at": {
                  "format": "date-time",
                  "type": "string"
                },
                "code": {
                  "nullable": true,
                  "type": "string"
                },
                "duration_ms": {
                  "type": "integer"
                },
                "error": {
                  "nullable": true,
                  "type": "string"
                },
                "http_status": {
                  "type": "integer"
                },
                "kind": {
                  "enum": [
                    "create",
                    "query",
                    "cancel",
                    "list",
                    "upload",
                    "download"
                  ],
                  "type": "string"
                },
                "request_id": {
                  "nullable": true,
                  "type": "string"
                }
              },
              "required": [
                "kind",
                "http_status",
                "duration_ms",
                "at"
              ],
              "type": "object"
            },
            "type": "array"
          },
          "job": {
            "$ref": "#/components/schemas/Job"
          },
          "prompt": {
            "type": "string"
          },
          "references": {
            "items": {
              "type": "string"
            },
            "type": "array"
          },
          "task_ids": {
            "items": {
              "type": "string"
            },
            "type": "array"
          },
          "transitions": {
            "items": {
              "properties": {
                "at": {
                  "format": "date-time",
                  "type": "string"
                },
                "cause": {
                  "type": "string"
                },
                "from": {
                  "nullable": true,
                  "type": "string"
                },
                "to": {
                  "type": "string"
                }
              },
              "required": [
                "to",
                "cause",
                "at"
              ],
              "type": "object"
            },
            "type": "array"
          }
        },
        "required": [
          "job",
          "prompt",
          "references",
          "task_ids",
          "transitions",
          "attempts"
        ],
        "type": "object"
      },
      "JobPage": {
        "properties": {
          "jobs": {
            "items": {
              "$ref": "#/components/schemas/Job"
            },
            "type": "array"
          },
          "next_cursor": {
            "nullable": true,
            "type": "string"
          }
        },
        "required": [
          "jobs"
        ],
        "type": "object"
      },
      "ResolveRequest": {
        "properties": {
          "action": {
            "enum": [
              "adopt",
              "resubmit",
              "fail"
            ],
            "type": "string"
          },
          "task_id": {
            "nullable": true,
            "type": "string"
          }
        },
        "required": [
          "action"
        ],
        "type": "object"
      },
      "Status": {
        "properties": {
          "batches": {
            "minimum": 0,
            "type": "integer"
          },
          "billed_not_delivered_jobs": {
            "description": "how many jobs were billed but ended without a delivered file",
            "minimum": 0,
            "type": "integer"
          },
          "billed_not_delivered_usd": {
            "description": "the part of spend_usd billed for jobs that ended without a delivered file",
            "minimum": 0,
            "type": "number"
          },
          "jobs": {
            "additionalProperties": {
              "minimum": 0,
              "type": "integer"
            },
            "description": "jobs by state; states with no jobs may be absent",
            "type": "object"
          },
          "mode": {
            "enum": [
              "running",
              "paused",
              "draining"
            ],
            "type": "string"
          },
          "pid": {
            "type": "integer"
          },
          "provider": {
            "properties": {
              "concurrency_cap": {
                "minimum": 0,
                "type": "integer"
              },
              "concurrency_limit": {
                "minimum": 0,
                "type": "integer"
              },
              "creates": {
                "minimum": 0,
                "type": "integer"
              },
              "detail": {
                "nullable": true,
                "type": "string"
              },
              "health": {
                "enum": [
                  "ok",
                  "throttled",
                  "breaker_open",
                  "account_blocked",
                  "paused"
                ],
                "type": "string"
              },
              "polls": {
                "minimum": 0,
                "type": "integer"
              },
              "slots_in_use": {
                "minimum": 0,
                "type": "integer"
              },
              "throttles": {
                "minimum": 0,
                "type": "integer"
              }
            },
            "required": [
              "health",
              "concurrency_limit",
              "concurrency_cap",
              "slots_in_use",
              "throttles",
              "creates",
              "polls"
            ],
            "type": "object"
          },
          "spend_usd": {
            "description": "USD billed so far: every job whose task SUCCEEDED, delivered or not",
            "minimum": 0,
            "type": "number"
          },
          "started_at": {
            "format": "date-time",
            "type": "string"
          },
          "storage": {
            "description": "whether delivery can write to the output filesystem; `waiting` while deliveries wait for it (full, read-only, failing, or out of file descriptors) — they resume by themselves",
            "properties": {
              "detail": {
                "description": "one of the refusals, e.g. `No space left on device`",
                "nullable": true,
                "type": "string"
              },
              "health": {
                "enum": [
                  "ok",
                  "waiting"
                ],
                "type": "string"
              },
              "waiting_jobs": {
                "minimum": 0,
                "type": "integer"
              }
            },
            "required": [
              "health",
              "waiting_jobs"
            ],
            "type": "object"
          },
          "total_jobs": {
            "minimum": 0,
            "type": "integer"
          },
          "uptime_s": {
            "minimum": 0,
            "type": "number"
          },
          "version": {
            "type": "string"
          },
          "warnings": {
            "items": {
              "type": "string"
            },
            "type": "array"
          }
        },
        "required": [
          "version",
          "pid",
          "started_at",
          "uptime_s",
          "mode",
          "jobs",
          "total_jobs",
          "batches",
          "provider",
          "spend_usd",
          "warnings",
          "billed_not_delivered_usd",
          "billed_not_delivered_jobs",
          "storage"
        ],
        "type": "object"
      }
    }
  },
  "info": {
    "description": "HTTP/1.1 + JSON over reeld's Unix socket (default /run/reel/reel.sock): `curl --unix-socket /run/reel/reel.sock http://reel/v1/status`. Reads are open to anyone who can connect to the socket; mutations (POST) need root, the daemon's user or the configured admin group, decided by SO_PEERCRED. Times are RFC 3339 UTC; money is USD.",
    "title": "Reel control API",
    "version": "1"
  },
  "openapi": "3.0.3",
  "paths": {
    "/v1/batches": {
      "get": {
        "operationId": "listBatches",
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/BatchList"
                }
              }
            },
            "description": "OK"
          }
        },
        "summary": "All batches"
      }
    },
    "/v1/batches/{batch}": {
      "get": {
        "operationId": "showBatch",
        "parameters": [
          {
            "description": "batch name",
            "example": "spring-campaign",
            "in": "path",
            "name": "batch",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Batch"
                }
              }
            },
            "description": "OK"
          },
          "404": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "no such batch"
          }
        },
        "summary": "One batch"
      }
    },
    "/v1/batches/{batch}/cancel": {
      "post": {
        "operationId": "cancelBatch",
        "parameters": [
          {
            "description": "batch name",
            "example": "spring-campaign",
            "in": "path",
            "name": "batch",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate (peer credentials)"
          },
          "404": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "no such job or batch"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "the action does not apply in the job's current state"
          }
        },
        "summary": "Cancel a batch"
      }
    },
    "/v1/batches/{batch}/pause": {
      "post": {
        "operationId": "pauseBatch",
        "parameters": [
          {
            "description": "batch name",
            "example": "spring-campaign",
            "in": "path",
            "name": "batch",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate (peer credentials)"
          },
          "404": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "no such job or batch"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "the action does not apply in the job's current state"
          }
        },
        "summary": "Pause a batch"
      }
    },
    "/v1/batches/{batch}/resume": {
      "post": {
        "operationId": "resumeBatch",
        "parameters": [
          {
            "description": "batch name",
            "example": "spring-campaign",
            "in": "path",
            "name": "batch",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate (peer credentials)"
          },
          "404": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "no such job or batch"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "the action does not apply in the job's current state"
          }
        },
        "summary": "Resume a batch"
      }
    },
    "/v1/drain": {
      "post": {
        "operationId": "drain",
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "refused"
          }
        },
        "summary": "Finish what runs, submit nothing new"
      }
    },
    "/v1/events": {
      "get": {
        "operationId": "events",
        "parameters": [
          {
            "in": "query",
            "name": "batch",
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "content": {
              "text/event-stream": {
                "schema": {
                  "type": "string"
                }
              }
            },
            "description": "an event stream"
          }
        },
        "summary": "Server-sent events: `job`, `batch` and `status` changes (for reelctl watch)"
      }
    },
    "/v1/jobs": {
      "get": {
        "operationId": "listJobs",
        "parameters": [
          {
            "in": "query",
            "name": "state",
            "schema": {
              "enum": [
                "queued",
                "held",
                "retrying",
                "submitting",
                "in_doubt",
                "pending",
                "running",
                "downloading",
                "verifying",
                "succeeded",
                "failed",
                "cancelled",
                "expired"
              ],
              "type": "string"
            }
          },
          {
            "in": "query",
            "name": "batch",
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          },
          {
            "in": "query",
            "name": "limit",
            "schema": {
              "default": 100,
              "maximum": 1000,
              "minimum": 1,
              "type": "integer"
            }
          },
          {
            "in": "query",
            "name": "cursor",
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/JobPage"
                }
              },
              "application/x-ndjson": {
                "schema": {
                  "$ref": "#/components/schemas/Job"
                }
              }
            },
            "description": "a page of jobs"
          },
          "400": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "bad filter"
          }
        },
        "summary": "Jobs, paged by cursor (NDJSON of all matches with Accept: application/x-ndjson)"
      }
    },
    "/v1/jobs/{batch}/{id}": {
      "get": {
        "operationId": "showJob",
        "parameters": [
          {
            "description": "batch name",
            "example": "spring-campaign",
            "in": "path",
            "name": "batch",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          },
          {
            "description": "job id",
            "example": "hero-001",
            "in": "path",
            "name": "id",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/JobDetail"
                }
              }
            },
            "description": "OK"
          },
          "400": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "bad job address"
          },
          "404": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "no such job"
          }
        },
        "summary": "One job with its transitions and provider exchanges"
      }
    },
    "/v1/jobs/{batch}/{id}/cancel": {
      "post": {
        "operationId": "cancelJob",
        "parameters": [
          {
            "description": "batch name",
            "example": "spring-campaign",
            "in": "path",
            "name": "batch",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          },
          {
            "description": "job id",
            "example": "hero-001",
            "in": "path",
            "name": "id",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "400": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "bad job address"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate (peer credentials)"
          },
          "404": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "no such job or batch"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "the action does not apply in the job's current state"
          }
        },
        "summary": "Cancel one job"
      }
    },
    "/v1/jobs/{batch}/{id}/hold": {
      "post": {
        "operationId": "holdJob",
        "parameters": [
          {
            "description": "batch name",
            "example": "spring-campaign",
            "in": "path",
            "name": "batch",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          },
          {
            "description": "job id",
            "example": "hero-001",
            "in": "path",
            "name": "id",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "400": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "bad job address"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate (peer credentials)"
          },
          "404": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "no such job or batch"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "the action does not apply in the job's current state"
          }
        },
        "summary": "Hold one job"
      }
    },
    "/v1/jobs/{batch}/{id}/release": {
      "post": {
        "operationId": "releaseJob",
        "parameters": [
          {
            "description": "batch name",
            "example": "spring-campaign",
            "in": "path",
            "name": "batch",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          },
          {
            "description": "job id",
            "example": "hero-001",
            "in": "path",
            "name": "id",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "400": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "bad job address"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate (peer credentials)"
          },
          "404": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "no such job or batch"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "the action does not apply in the job's current state"
          }
        },
        "summary": "Release one job"
      }
    },
    "/v1/jobs/{batch}/{id}/resolve": {
      "post": {
        "operationId": "resolveJob",
        "parameters": [
          {
            "description": "batch name",
            "example": "spring-campaign",
            "in": "path",
            "name": "batch",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          },
          {
            "description": "job id",
            "example": "hero-001",
            "in": "path",
            "name": "id",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/ResolveRequest"
              }
            }
          },
          "required": true
        },
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "400": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "bad request body"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate (peer credentials)"
          },
          "404": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "no such job or batch"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "the action does not apply in the job's current state"
          }
        },
        "summary": "Settle an in-doubt job: adopt a task, resubmit, or fail"
      }
    },
    "/v1/jobs/{batch}/{id}/retry": {
      "post": {
        "operationId": "retryJob",
        "parameters": [
          {
            "description": "batch name",
            "example": "spring-campaign",
            "in": "path",
            "name": "batch",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          },
          {
            "description": "job id",
            "example": "hero-001",
            "in": "path",
            "name": "id",
            "required": true,
            "schema": {
              "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "400": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "bad job address"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate (peer credentials)"
          },
          "404": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "no such job or batch"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "the action does not apply in the job's current state"
          }
        },
        "summary": "Retry one job"
      }
    },
    "/v1/metrics": {
      "get": {
        "operationId": "metrics",
        "responses": {
          "200": {
            "content": {
              "text/plain": {
                "schema": {
                  "type": "string"
                }
              }
            },
            "description": "metrics"
          }
        },
        "summary": "Prometheus text metrics"
      }
    },
    "/v1/openapi.json": {
      "get": {
        "operationId": "openapi",
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "type": "object"
                }
              }
            },
            "description": "OK"
          }
        },
        "summary": "This document"
      }
    },
    "/v1/pause": {
      "post": {
        "operationId": "pause",
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "refused"
          }
        },
        "summary": "Stop submitting new renders (running ones continue)"
      }
    },
    "/v1/reload": {
      "post": {
        "operationId": "reload",
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "refused"
          }
        },
        "summary": "Re-read the configuration (as SIGHUP)"
      }
    },
    "/v1/resume": {
      "post": {
        "operationId": "resume",
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "OK"
          },
          "403": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Error"
                }
              }
            },
            "description": "the caller may read but not mutate"
          },
          "409": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ActionResult"
                }
              }
            },
            "description": "refused"
          }
        },
        "summary": "Resume submitting"
      }
    },
    "/v1/status": {
      "get": {
        "operationId": "status",
        "responses": {
          "200": {
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Status"
                }
              }
            },
            "description": "OK"
          }
        },
        "summary": "Daemon, queue and provider health at a glance"
      }
    }
  },
  "servers": [
    {
      "url": "http://reel"
    }
  ]
}
"""#
}
