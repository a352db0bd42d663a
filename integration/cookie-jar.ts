/**
 * A browser's cookie jar, enough for PHP's session cookie (and a load balancer's route cookie):
 * keeps, replaces and deletes cookies as Set-Cookie says (RFC 6265: Max-Age=0, an Expires in the
 * past, and PHP's "deleted" value remove one).
 */
export class CookieJar {
  readonly cookies = new Map<string, string>();

  /** The Cookie header to send, or undefined with no cookie. */
  header(): string | undefined {
    return this.cookies.size === 0 ? undefined : [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** Takes in a response's Set-Cookie lines. */
  remember(setCookies: readonly string[]): void {
    for (const line of setCookies) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = pair!.slice(eq + 1);
      const expired = attrs.some((a) => /^max-age=0$/i.test(a) || (/^expires=/i.test(a) && Date.parse(a.slice(8)) < Date.now()));
      if (expired || value === '' || value === 'deleted') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}
