"""Documents in: creating and deleting documents (`documents`), splitting text
(`chunking`), the pipeline stages chunk → embed → finalize (`pipeline`) and how they are chained
(`queues`, with Cloud Tasks, SQS or inline delivery). Uses `retrieval.embeddings` to embed;
never imports the HTTP layer (requests are parsed in `api`)."""
