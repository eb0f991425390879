// kinesalite on 127.0.0.1 only (its command line listens on every
// interface). Usage: node serve.js PORT [LEVELDB_PATH]
// Streams are ACTIVE at once and the shard limit is lifted, so that the
// local pipeline can create its stream without waiting.
'use strict';
const path = require('path');
const kinesalite = require(path.join(process.env.KINESALITE_MODULES || path.join(__dirname, 'node_modules'), 'kinesalite'));

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node serve.js PORT [LEVELDB_PATH]');
  process.exit(2);
}
const options = { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 1000 };
if (process.argv[3]) options.path = process.argv[3];
const server = kinesalite(options);
// Longer than the AWS SDK keeps an idle connection (90 s): otherwise the server
// closes connections the client is about to reuse (ECONNRESET).
server.keepAliveTimeout = 180000;
server.headersTimeout = 181000;
server.listen(port, '127.0.0.1', () => console.log(`kinesalite listening on http://127.0.0.1:${port}`));
server.on('error', (e) => { console.error(`kinesalite: ${e.message}`); process.exit(1); });
