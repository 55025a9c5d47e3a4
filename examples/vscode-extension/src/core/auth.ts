/** Sign-in input: a bare token or the dashboard link `serve` prints (`http://host:port/#token=…`), and who a
 * token names (read without checking it: the server checks). */

export interface SignInInput {
  token: string;
  /** The server's address when a link was given. */
  serverUrl?: string;
}

/** Reads what a person pasted; null when there is no token in it. */
export function parseSignIn(text: string): SignInInput | null {
  const input = text.trim();
  if (!input) return null;
  const hashAt = input.indexOf('#');
  if (/^https?:\/\//i.test(input)) {
    let url: URL;
    try {
      url = new URL(input);
    } catch {
      return null;
    }
    const params = new URLSearchParams(hashAt >= 0 ? input.slice(hashAt + 1) : '');
    const token = params.get('token') || params.get('access_token') || url.searchParams.get('token');
    return token ? { token, serverUrl: url.origin } : null;
  }
  if (input.startsWith('#')) {
    const token = new URLSearchParams(input.slice(1)).get('token');
    return token ? { token } : null;
  }
  if (/\s/.test(input)) return null;
  return { token: input };
}

/** The `sub` of a JWT (an email), or null when the token is not a readable JWT (e.g. an API key). */
export function tokenSubject(token: string): string | null {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof claims.sub === 'string' && claims.sub ? claims.sub : null;
  } catch {
    return null;
  }
}
