// A loopback proxy in front of `serve` that adds the API key to every request (the conformance runner
// cannot send headers of its own). Everything else, Host and Origin included, passes through as sent,
// so the runner's DNS-rebinding checks reach the server unchanged. Prints its URL on stdout.
import http from 'node:http';

const target = new URL(process.env.TARGET);
const authorization = process.env.AUTHORIZATION;

const proxy = http.createServer((request, response) => {
  const upstream = http.request(
    {
      host: target.hostname,
      port: target.port,
      path: request.url,
      method: request.method,
      headers: { ...request.headers, authorization },
    },
    (answer) => {
      response.writeHead(answer.statusCode, answer.headers);
      answer.pipe(response);
    },
  );
  upstream.on('error', (error) => {
    response.writeHead(502, { 'content-type': 'text/plain' });
    response.end(`proxy: ${error.message}`);
  });
  request.pipe(upstream);
});

proxy.listen(0, '127.0.0.1', () => console.log(`http://127.0.0.1:${proxy.address().port}`));
