// Run the scenario named on the command line and print what it returns as one line of JSON.
// The proxy's address and the token to call it with come from PROXY_URL and PROXY_TOKEN.
// An error a scenario does not catch ends the process with status 1 and its stack on stderr.

export const proxyUrl = process.env.PROXY_URL;
export const token = process.env.PROXY_TOKEN;

/** Return what a test asserts on of an error a client threw. */
export function described(error) {
  return {
    name: error.name,
    message: error.message,
    status: error.status_code ?? error.statusCode ?? null,
    ...(error.responseBody !== undefined && { body: error.responseBody }), // the AI SDK's, as it came
  };
}

/** Run scenarios[argv[2]] with the arguments after it and print its result. */
export async function run(scenarios) {
  const [name, ...args] = process.argv.slice(2);
  const scenario = scenarios[name];
  if (scenario === undefined) {
    throw new Error(`no scenario ${name}; known: ${Object.keys(scenarios).join(', ')}`);
  }
  process.stdout.write(JSON.stringify(await scenario(...args)) + '\n');
}
