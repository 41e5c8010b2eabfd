// A client that keeps cookies like a browser does, for the demo and the benchmarks.

/** Just enough of a browser: keeps the cookies a server sets and sends them back. */
export class CookieJar {
	readonly #cookies = new Map<string, string>();

	async fetch(url: string, init: RequestInit = {}): Promise<Response> {
		const headers = new Headers(init.headers);
		if (this.#cookies.size > 0) {
			headers.set('Cookie', [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; '));
		}

		const response = await fetch(url, {...init, headers});
		for (const cookie of response.headers.getSetCookie()) {
			const [pair] = cookie.split(';');
			const separator = pair.indexOf('=');
			const [name, value] = [pair.slice(0, separator), pair.slice(separator + 1)];
			// A server deletes a cookie by setting it empty and expired.
			if (value === '') {
				this.#cookies.delete(name);
			} else {
				this.#cookies.set(name, value);
			}
		}

		return response;
	}
}
